// Small DOM helpers shared by every page: element creation, the one alert
// region, the status line, focus management and formatting.

/**
 * Create an element. `attrs` keys: `class`, `text`, `on<event>` (a listener),
 * `dataset`, boolean attributes (true → present, false/null → absent), others
 * as attributes. Children: nodes, strings (as text), arrays, null (skipped).
 * User data only ever becomes text nodes, never HTML.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Text for screen readers only (see `.visually-hidden` in app.css). */
export function srOnly(text) {
  return h("span", { class: "visually-hidden", text });
}

// --- the alert region: one per page (index.html #alert) ----------------------

let pending = null; // a message to show after the next navigation

export function showAlert(message) {
  const region = document.getElementById("alert");
  region.textContent = message;
  region.hidden = !message;
  if (message) announce(""); // an "Uploading…" or "Saved" line would contradict it
}

export function clearAlert() {
  showAlert("");
}

/** Keep `message` for the next page (e.g. "sign in again" after a 401). */
export function flashAlert(message) {
  pending = message;
}

/** Called by the router after a page is rendered. */
export function showFlashedAlert() {
  if (pending) showAlert(pending);
  pending = null;
}

// --- the status line: polite, for what went well ------------------------------

let statusTimer = null;

export function announce(message) {
  const region = document.getElementById("status");
  region.textContent = message;
  clearTimeout(statusTimer);
  if (message) {
    statusTimer = setTimeout(() => {
      region.textContent = "";
    }, 8000);
  }
}

// --- focus ----------------------------------------------------------------------

/** Move focus to a heading (made focusable) so screen readers start there. */
export function focusHeading(heading) {
  if (!heading) return;
  if (!heading.hasAttribute("tabindex")) heading.setAttribute("tabindex", "-1");
  heading.focus({ preventScroll: false });
}

// --- formatting -------------------------------------------------------------------

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });

/** Epoch seconds → "3 Dec 2026, 16:20" in the browser's zone. */
export function formatDateTime(epochSeconds) {
  return dateTime.format(new Date(epochSeconds * 1000));
}

/** An ISO-8601 string → a short local time, with the date if not today. */
export function formatPosted(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return "";
  const today = new Date().toDateString() === when.toDateString();
  return today ? timeOnly.format(when) : dateTime.format(when);
}

/** Seconds left → "25 min left", "1 h 5 min left", "less than a minute left". */
export function formatTimeLeft(secondsLeft) {
  if (secondsLeft <= 0) return "ending now";
  const minutes = Math.floor(secondsLeft / 60);
  if (minutes < 1) return "less than a minute left";
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  if (hours === 0) return `${minutes} min left`;
  return rest === 0 ? `${hours} h left` : `${hours} h ${rest} min left`;
}

export function formatBytes(size) {
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KB`;
  return `${(size / (1024 * 1024)).toFixed(1)} MB`;
}

export function plural(count, one, many = `${one}s`) {
  return `${count} ${count === 1 ? one : many}`;
}

/** Epoch seconds → the value of an <input type="datetime-local"> (local time). */
export function toLocalInputValue(epochSeconds) {
  const d = new Date(epochSeconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}` +
    `T${pad(d.getHours())}:${pad(d.getMinutes())}`
  );
}

/**
 * The value of an <input type="datetime-local"> → epoch seconds. The browser
 * gives "YYYY-MM-DDTHH:mm[:ss]" without a zone, which `new Date` reads as local
 * time (unlike `valueAsNumber`, which would read it as UTC). null if invalid.
 */
export function fromLocalInputValue(value) {
  if (!value) return null;
  const ms = new Date(value).getTime();
  return Number.isNaN(ms) ? null : Math.floor(ms / 1000);
}
