// Inputs drawn from a thing model's data types (TSL: int, float, double, bool, enum, text,
// date, struct, array) and read back as the values the model asks for.

const NUMBERS = new Set(["int", "float", "double"]);

/** A labelled input for one TSL field ({identifier, name, dataType}). */
export function field(spec, value) {
  const { type, specs = {} } = spec.dataType || {};
  const label = document.createElement("label");
  label.append(`${spec.name || spec.identifier} `);
  let input;
  if (type === "bool" || type === "enum") {
    input = document.createElement("select");
    for (const [key, text] of Object.entries(specs)) {
      const option = document.createElement("option");
      option.value = key;
      option.textContent = `${text} (${key})`;
      input.append(option);
    }
  } else if (type === "struct" || type === "array") {
    input = document.createElement("textarea");
    input.rows = 2;
    input.placeholder = type === "array" ? "[…] as JSON" : "{…} as JSON";
  } else {
    input = document.createElement("input");
    if (NUMBERS.has(type)) {
      input.type = "number";
      input.step = type === "int" ? specs.step || "1" : "any";
      if (specs.min !== undefined) input.min = specs.min;
      if (specs.max !== undefined) input.max = specs.max;
    }
  }
  input.name = spec.identifier;
  input.dataset.type = type || "text";
  if (value !== undefined && value !== null) {
    input.value = typeof value === "object" ? JSON.stringify(value) : String(value);
  }
  label.append(input);
  if (specs.unit) label.append(` ${specs.unit}`);
  return label;
}

/** The values of a form's inputs, typed as the model says; blank ones left out. */
export function values(form) {
  const params = {};
  for (const input of form.querySelectorAll("[data-type]")) {
    const text = input.value.trim();
    if (text === "") continue;
    const type = input.dataset.type;
    if (NUMBERS.has(type) || type === "bool" || type === "enum") params[input.name] = Number(text);
    else if (type === "struct" || type === "array") params[input.name] = JSON.parse(text);
    else params[input.name] = text;
  }
  return params;
}

/** A value as the operator reads it: an enum's or a bool's label, a unit, JSON otherwise. */
export function display(spec, value) {
  if (value === undefined || value === null) return "—";
  const { type, specs = {} } = (spec && spec.dataType) || {};
  if ((type === "bool" || type === "enum") && specs[String(value)] !== undefined) {
    return `${specs[String(value)]} (${value})`;
  }
  if (typeof value === "object") return JSON.stringify(value);
  return specs.unit ? `${value} ${specs.unit}` : String(value);
}

export const numeric = (spec) => NUMBERS.has(spec?.dataType?.type);
