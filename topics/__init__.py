"""Topics and tables declared once (`catalogue`, `tables`), their provisioning and export,
the Kafka client helpers (`clients`), the embedded broker (`broker`) and its quirks."""
