"""Dunning letters people can read: the reference consumer of `PrintDunningLetter`.

- `config`: `LetterSettings.from_env()` (letterhead, SMTP, retries)
- `model`: the command as a `Letter`
- `wording`: texts per language (`templates/<lang>.toml`) and Babel formats
- `texts`: the business's texts (`DUNNING_LETTER_TEXTS`) over the bundled ones, their
  fields and the start-up check
- `documents`: the invoice PDFs attached to an e-mail (`DUNNING_INVOICE_DOCUMENTS`)
- `render`: the PDF (fpdf2, DejaVu Sans from `fonts/`), byte-identical for a command
- `store`: outbound documents (SQLite + PDFs under `<state_dir>/letters`)
- `mailer`: SMTP delivery with retries, every attempt recorded
- `service`: `LetterService` (`dunning letters serve`) and `render_pending` for the demo
- `printing`: text of a stored PDF, one PDF per run for a print shop
- `cli`: `register(subparsers)` adds `dunning letters …`
"""
