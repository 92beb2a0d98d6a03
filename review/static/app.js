// Progressive enhancement only: every page and decision works without this file.
document.addEventListener("DOMContentLoaded", () => {
  // A form is sent once: its buttons are disabled as it goes (the server also refuses
  // the same form twice, so a double click never makes a second decision).
  for (const form of document.querySelectorAll("form[method=post]")) {
    form.addEventListener("submit", (event) => {
      if (form.dataset.sent) { event.preventDefault(); return; }
      form.dataset.sent = "1";
      const pressed = event.submitter;
      if (pressed && pressed.name) {  // keep the pressed button's value once disabled
        const keep = document.createElement("input");
        keep.type = "hidden"; keep.name = pressed.name; keep.value = pressed.value;
        form.appendChild(keep);
      }
      setTimeout(() => form.querySelectorAll("button").forEach((b) => { b.disabled = true; }), 0);
    });
  }
  const all = document.getElementById("select-page");
  if (all) {
    all.addEventListener("change", () => {
      for (const box of document.querySelectorAll("#proposals input[name=ids]")) box.checked = all.checked;
    });
  }
});
