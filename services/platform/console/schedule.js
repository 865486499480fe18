// #/schedule (admins): schedule, change and cancel rooms.
//
//   POST   /schedule                {title, start_at, duration_minutes, topic, media_region} → 201 room
//   GET    /schedule?status=…&cursor=   {items, next_cursor}, one list per status
//   PATCH  /schedule/{id}           only the fields that changed → 200 room
//   DELETE /schedule/{id}           → 200 room (status "cancelled")
//
// 422 answers carry `details: [{loc: ["body", "<field>"], msg}]`: each is shown
// beside its field. Some refusals name no field but clearly belong to one
// (title_taken → Title, start_in_past / start_too_far → Starts).

import { api, ApiError, describeError } from "./api.js";
import {
  announce,
  clearAlert,
  focusHeading,
  formatDateTime,
  fromLocalInputValue,
  h,
  showAlert,
  toLocalInputValue,
} from "./ui.js";

// Chime's media regions (services/scheduler/domain.py MEDIA_REGIONS).
const MEDIA_REGIONS = [
  ["us-east-1", "US East (N. Virginia)"],
  ["us-east-2", "US East (Ohio)"],
  ["us-west-1", "US West (N. California)"],
  ["us-west-2", "US West (Oregon)"],
  ["ca-central-1", "Canada (Central)"],
  ["sa-east-1", "South America (São Paulo)"],
  ["eu-central-1", "Europe (Frankfurt)"],
  ["eu-north-1", "Europe (Stockholm)"],
  ["eu-south-1", "Europe (Milan)"],
  ["eu-west-1", "Europe (Ireland)"],
  ["eu-west-2", "Europe (London)"],
  ["eu-west-3", "Europe (Paris)"],
  ["af-south-1", "Africa (Cape Town)"],
  ["il-central-1", "Israel (Tel Aviv)"],
  ["ap-east-1", "Asia Pacific (Hong Kong)"],
  ["ap-south-1", "Asia Pacific (Mumbai)"],
  ["ap-northeast-1", "Asia Pacific (Tokyo)"],
  ["ap-northeast-2", "Asia Pacific (Seoul)"],
  ["ap-southeast-1", "Asia Pacific (Singapore)"],
  ["ap-southeast-2", "Asia Pacific (Sydney)"],
  ["us-gov-east-1", "AWS GovCloud (US-East)"],
  ["us-gov-west-1", "AWS GovCloud (US-West)"],
];
const DEFAULT_REGION = "us-east-1";

const STATUSES = [
  ["scheduled", "Scheduled"],
  ["active", "Active"],
  ["ended", "Ended"],
  ["cancelled", "Cancelled"],
];

// The API's field names → the form's fields.
const FIELD_OF = {
  title: "title",
  start_at: "start",
  start_time: "start",
  duration_minutes: "duration",
  topic: "topic",
  media_region: "region",
};
const FIELD_OF_CODE = { title_taken: "title", start_in_past: "start", start_too_far: "start" };

export function mountSchedule(container, { session, live }) {
  const heading = h("h1", { text: "Schedule" });
  container.append(heading);
  if (session.role !== "admin") {
    container.append(h("p", { text: "Only admins schedule rooms." }));
    showAlert("Only admins can open the schedule. You are signed in as a " + session.role + ".");
    return { heading };
  }

  const form = scheduleForm();
  const lists = new Map(STATUSES.map(([status, label]) => [status, roomList(status, label)]));
  container.append(
    h(
      "div",
      { class: "schedule-layout" },
      form.el,
      h("div", { class: "schedule-lists" }, [...lists.values()].map((l) => l.el)),
    ),
  );

  let editing = null; // the room being edited, or null: the form schedules a new room

  form.el.addEventListener("submit", async (event) => {
    event.preventDefault();
    form.clearErrors();
    clearAlert();
    const values = form.values();
    if (values.start_at === null) {
      form.showErrors({ start: "Enter the date and time the room starts." });
      showAlert("The room was not saved: check the fields marked below.");
      return;
    }
    form.busy(true);
    try {
      if (editing) await saveChanges(values);
      else await create(values);
    } catch (error) {
      reportError(error);
    } finally {
      form.busy(false);
    }
  });
  form.stopEditing.addEventListener("click", () => {
    edit(null);
    focusHeading(form.heading);
  });

  async function create(values) {
    const room = await api("/schedule", { method: "POST", body: values });
    announce(`Scheduled “${room.title}” for ${formatDateTime(room.start_at)}.`);
    form.reset();
    refresh();
  }

  async function saveChanges(values) {
    const changes = {};
    if (values.title !== editing.title) changes.title = values.title;
    if (form.startChanged(editing.start_at)) changes.start_at = values.start_at;
    if (values.duration_minutes !== editing.duration_minutes) {
      changes.duration_minutes = values.duration_minutes;
    }
    if (values.topic !== editing.topic) changes.topic = values.topic;
    if (values.media_region !== editing.media_region) changes.media_region = values.media_region;
    if (Object.keys(changes).length === 0) {
      announce("Nothing changed.");
      return;
    }
    const room = await api(`/schedule/${encodeURIComponent(editing.room_id)}`, {
      method: "PATCH",
      body: changes,
    });
    announce(`Saved “${room.title}”.`);
    edit(null);
    refresh();
  }

  function reportError(error) {
    const errors = fieldErrors(error);
    if (Object.keys(errors).length > 0) {
      form.showErrors(errors);
      showAlert("The room was not saved: check the fields marked below.");
    } else {
      showAlert(describeError(error));
    }
  }

  function edit(room) {
    editing = room;
    form.clearErrors();
    form.setEditing(room);
  }

  async function cancel(room, list) {
    clearAlert();
    try {
      await api(`/schedule/${encodeURIComponent(room.room_id)}`, { method: "DELETE" });
      announce(`Cancelled “${room.title}”.`);
      if (editing && editing.room_id === room.room_id) edit(null);
    } catch (error) {
      showAlert(describeError(error));
    }
    await refresh();
    focusHeading(list.heading);
  }

  const actions = {
    edit: (room) => {
      edit(room);
      focusHeading(form.heading);
    },
    cancel,
  };
  for (const list of lists.values()) list.setActions(actions);

  async function refresh() {
    await Promise.all([...lists.values()].map((list) => list.load()));
  }

  // Rooms start and end on their own: follow room.updated frames (debounced).
  let pending = null;
  const later = () => {
    clearTimeout(pending);
    pending = setTimeout(refresh, 1000);
  };
  const stops = [
    live.on("room.updated", later),
    live.on("ready", ({ first }) => (first ? null : later())),
  ];
  refresh();

  return {
    heading,
    unmount() {
      clearTimeout(pending);
      stops.forEach((stop) => stop());
    },
  };
}

/** `{field: message}` from a 422's details, or from a refusal that names no field. */
function fieldErrors(error) {
  const errors = {};
  if (!(error instanceof ApiError)) return errors;
  if (FIELD_OF_CODE[error.code]) {
    errors[FIELD_OF_CODE[error.code]] = describeError(error);
    return errors;
  }
  if (error.status !== 422 || !Array.isArray(error.details)) return errors;
  for (const detail of error.details) {
    const loc = Array.isArray(detail.loc) ? detail.loc : [];
    const name = loc[0] === "body" ? loc[1] : loc[0];
    let field = FIELD_OF[name];
    if (!field && /start/.test(detail.msg || "")) field = "start"; // "give exactly one of start_at …"
    if (field && !errors[field]) errors[field] = readable(detail.msg);
  }
  return errors;
}

/** pydantic's "Value error, the title must …" → "The title must …". */
function readable(message) {
  const text = String(message || "Invalid value").replace(/^Value error,\s*/i, "");
  return text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? "" : ".");
}

// --- the form ---------------------------------------------------------------------

function scheduleForm() {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
  const controls = {
    title: h("input", { id: "sched-title", name: "title", maxlength: 64, autocomplete: "off" }),
    start: h("input", { id: "sched-start", name: "start", type: "datetime-local" }),
    duration: h("input", {
      id: "sched-duration",
      name: "duration",
      type: "number",
      min: 1,
      max: 1440,
      step: 1,
      inputmode: "numeric",
    }),
    topic: h("textarea", { id: "sched-topic", name: "topic", rows: 3, maxlength: 500 }),
    region: h(
      "select",
      { id: "sched-region", name: "region" },
      MEDIA_REGIONS.map(([code, place]) => h("option", { value: code, text: `${code} — ${place}` })),
    ),
  };
  const hints = {
    start: `Your local time (${zone}).`,
    duration: "1 to 1440 minutes.",
    topic: "Optional, up to 500 characters.",
  };
  const labels = {
    title: "Title",
    start: "Starts",
    duration: "Duration (minutes)",
    topic: "Topic",
    region: "Media region",
  };
  const errors = {};
  const fields = Object.entries(controls).map(([key, control]) => {
    const errorId = `${control.id}-error`;
    const hintId = `${control.id}-hint`;
    errors[key] = h("p", { id: errorId, class: "field-error", hidden: true });
    control.setAttribute("aria-describedby", hints[key] ? `${errorId} ${hintId}` : errorId);
    return h(
      "div",
      { class: "field" },
      h("label", { for: control.id, text: labels[key] }),
      hints[key] ? h("p", { id: hintId, class: "hint", text: hints[key] }) : null,
      control,
      errors[key],
    );
  });
  const heading = h("h2", { id: "sched-form-heading", text: "Schedule a room" });
  const submit = h("button", { type: "submit", class: "primary", text: "Schedule" });
  const stopEditing = h("button", { type: "button", text: "Stop editing", hidden: true });
  const el = h(
    "form",
    { class: "card stack schedule-form", novalidate: true, "aria-labelledby": "sched-form-heading" },
    heading,
    fields,
    h("div", { class: "actions" }, submit, stopEditing),
  );

  function reset() {
    controls.title.value = "";
    controls.topic.value = "";
    controls.duration.value = "30";
    controls.region.value = DEFAULT_REGION;
    // the next whole 5 minutes, at least 5 minutes from now
    const next = Math.ceil((Date.now() / 1000 + 300) / 300) * 300;
    controls.start.value = toLocalInputValue(next);
  }
  reset();

  return {
    el,
    heading,
    stopEditing,
    reset,
    values() {
      const duration = controls.duration.value.trim();
      return {
        title: controls.title.value,
        start_at: fromLocalInputValue(controls.start.value),
        duration_minutes: duration === "" ? null : Number(duration),
        topic: controls.topic.value,
        media_region: controls.region.value,
      };
    },
    /** The input shows minutes: a start is changed only if the shown minute is. */
    startChanged(startAt) {
      return controls.start.value !== toLocalInputValue(startAt);
    },
    setEditing(room) {
      heading.textContent = room ? `Edit “${room.title}”` : "Schedule a room";
      submit.textContent = room ? "Save changes" : "Schedule";
      stopEditing.hidden = !room;
      if (!room) {
        reset();
        return;
      }
      controls.title.value = room.title;
      controls.start.value = toLocalInputValue(room.start_at);
      controls.duration.value = String(room.duration_minutes);
      controls.topic.value = room.topic;
      controls.region.value = room.media_region;
    },
    showErrors(byField) {
      let first = null;
      for (const [key, message] of Object.entries(byField)) {
        errors[key].textContent = message;
        errors[key].hidden = false;
        controls[key].setAttribute("aria-invalid", "true");
        first = first || controls[key];
      }
      if (first) first.focus();
    },
    clearErrors() {
      for (const key of Object.keys(errors)) {
        errors[key].textContent = "";
        errors[key].hidden = true;
        controls[key].removeAttribute("aria-invalid");
      }
    },
    busy(on) {
      submit.disabled = on;
    },
  };
}

// --- one list per status ------------------------------------------------------------

function roomList(status, label) {
  const headingId = `sched-list-${status}`;
  const heading = h("h2", { id: headingId, text: label });
  const list = h("ul", { class: "sched-rooms", "aria-labelledby": headingId, "aria-live": "polite" });
  const empty = h("p", { class: "empty", text: "Loading…" });
  const more = h("button", { type: "button", text: `Show more ${label.toLowerCase()} rooms`, hidden: true });
  const el = h("section", { class: "sched-list", "aria-labelledby": headingId }, heading, list, empty, more);
  let cursor = null;
  let actions = {};
  const self = {
    el,
    heading,
    setActions(value) {
      actions = value;
    },
    async load({ append = false } = {}) {
      const query = new URLSearchParams({ status });
      if (append && cursor) query.set("cursor", cursor);
      try {
        const page = await api(`/schedule?${query}`);
        if (!append) list.replaceChildren();
        page.items.forEach((room) => list.append(scheduledItem(room, actions, self)));
        cursor = page.next_cursor || null;
        more.hidden = !cursor;
        empty.hidden = list.children.length > 0;
        empty.textContent = `No ${label.toLowerCase()} rooms.`;
      } catch (error) {
        empty.textContent = "Could not load this list.";
        showAlert(describeError(error));
      }
    },
  };
  more.addEventListener("click", () => self.load({ append: true }));
  return self;
}

function scheduledItem(room, actions, list) {
  const titleId = `sched-room-${room.room_id}`;
  const buttons = [];
  if (room.status === "scheduled") {
    buttons.push(
      h("button", {
        type: "button",
        text: "Edit",
        "aria-describedby": titleId,
        onclick: () => actions.edit(room),
      }),
    );
  }
  if (room.status === "scheduled" || room.status === "active") {
    buttons.push(
      h("button", {
        type: "button",
        class: "danger",
        text: "Cancel",
        "aria-describedby": titleId,
        onclick: () => actions.cancel(room, list),
      }),
    );
  }
  const region = MEDIA_REGIONS.find(([code]) => code === room.media_region);
  return h(
    "li",
    { class: "card sched-room", "aria-labelledby": titleId },
    h("h3", { id: titleId, text: room.title }),
    h(
      "p",
      { class: "meta" },
      `${formatDateTime(room.start_at)} – ${formatDateTime(room.end_at)} · ${room.duration_minutes} min · `,
      h("span", { title: region ? region[1] : "", text: room.media_region }),
    ),
    room.topic ? h("p", { class: "topic", text: room.topic }) : null,
    buttons.length ? h("div", { class: "actions" }, buttons) : null,
  );
}
