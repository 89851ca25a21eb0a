// A text editor for a rule's SQL or a JSON document: a textarea with its line numbers in
// a gutter, and an error put where it is — the caret at its line and column, the line
// marked, the message under the editor.

/** The text's offset of ``line`` and ``column`` (both from 1). */
export function offsetOf(text, line, column) {
  const lines = text.split("\n");
  let offset = 0;
  for (let n = 0; n < Math.min(line - 1, lines.length); n++) offset += lines[n].length + 1;
  return Math.min(text.length, offset + Math.max(0, column - 1));
}

export class CodeEditor {
  /** An editor in ``holder``, its textarea named ``name`` and labelled ``label``. */
  constructor(holder, { name, label, rows = 8, readOnly = false }) {
    holder.classList.add("code");
    holder.innerHTML = `<ol class="gutter" aria-hidden="true"></ol><textarea spellcheck="false" wrap="off"></textarea>
      <p class="problem" role="alert" hidden></p>`;
    this.gutter = holder.querySelector(".gutter");
    this.area = holder.querySelector("textarea");
    this.problem = holder.querySelector(".problem");
    this.area.name = name;
    this.area.rows = rows;
    this.area.readOnly = readOnly;
    this.area.setAttribute("aria-label", label);
    this.area.addEventListener("input", () => this.number());
    this.area.addEventListener("scroll", () => (this.gutter.scrollTop = this.area.scrollTop));
  }

  get value() {
    return this.area.value;
  }

  set value(text) {
    this.area.value = text;
    this.clear();
  }

  number(marked = 0) {
    const count = this.area.value.split("\n").length;
    const items = [];
    for (let n = 1; n <= count; n++) {
      const li = document.createElement("li");
      li.textContent = String(n);
      if (n === marked) li.className = "error";
      items.push(li);
    }
    this.gutter.replaceChildren(...items);
  }

  clear() {
    this.problem.hidden = true;
    this.problem.textContent = "";
    this.area.removeAttribute("aria-invalid");
    this.number();
  }

  /** The message under the editor; with a line (and column), the caret put there. */
  show(message, line, column) {
    this.problem.textContent = message;
    this.problem.hidden = false;
    this.area.setAttribute("aria-invalid", "true");
    this.number(line || 0);
    if (line) {
      const at = offsetOf(this.area.value, line, column || 1);
      this.area.focus();
      this.area.setSelectionRange(at, at);
      this.area.dataset.errorLine = String(line);
    }
  }
}
