// #/rooms, the landing page: the active rooms, live.
//
//   GET  /rooms                    on every (re)connect of the WebSocket
//   room.updated frames            {room_id, title, status, attendee_count}
//   GET  /rooms/{id}               for an active room the list does not have yet
//   POST /rooms/{id}/join          → {Meeting, Attendee} (Chime's objects)
//   POST /rooms/{id}/leave         → 204

import { api, describeError } from "./api.js";
import { announce, focusHeading, formatTimeLeft, h, plural, showAlert } from "./ui.js";

const TICK_MS = 15_000;

// The room this tab has joined, kept across pages: {roomId, title, meetingId, attendeeId}.
let joined = null;

/** On sign-out: leave the joined room (best effort) so its attendee is freed at once. */
export async function leaveJoinedRoom() {
  if (!joined) return;
  const { roomId } = joined;
  joined = null;
  await api(`/rooms/${encodeURIComponent(roomId)}/leave`, { method: "POST" }).catch(() => {});
}

export function mountRooms(container, { live }) {
  const heading = h("h1", { id: "rooms-heading", text: "Active rooms" });
  const panel = h("section", { class: "card joined", "aria-labelledby": "joined-heading", hidden: true });
  const list = h("ul", { class: "rooms", "aria-labelledby": "rooms-heading", "aria-live": "polite" });
  const empty = h("p", { class: "empty", text: "Loading rooms…" });
  container.append(heading, panel, list, empty);

  const items = new Map(); // room_id → {room, el, parts}
  let loadedOnce = false;

  function render() {
    const sorted = [...items.values()].sort((a, b) => a.room.start_at - b.room.start_at);
    sorted.forEach(({ el }, index) => {
      if (list.children[index] !== el) list.insertBefore(el, list.children[index] || null);
    });
    empty.hidden = items.size > 0;
    if (loadedOnce) empty.textContent = "No rooms are active right now.";
  }

  function upsert(room) {
    const known = items.get(room.room_id);
    if (known) {
      known.room = { ...known.room, ...room };
      fill(known);
    } else {
      const entry = roomItem(room, join);
      items.set(room.room_id, entry);
      fill(entry);
    }
    render();
  }

  function remove(roomId) {
    const entry = items.get(roomId);
    if (!entry) return;
    const hadFocus = entry.el.contains(document.activeElement);
    entry.el.remove();
    items.delete(roomId);
    render();
    if (hadFocus) focusHeading(heading);
    if (joined && joined.roomId === roomId) {
      announce(`${joined.title} has ended.`);
      joined = null;
      showJoined();
    }
  }

  function fill(entry) {
    const { room, parts } = entry;
    parts.title.textContent = room.title;
    parts.topic.textContent = room.topic || "";
    parts.topic.hidden = !room.topic;
    parts.timeLeft.textContent = formatTimeLeft(room.end_at - Date.now() / 1000);
    parts.count.textContent = plural(room.attendee_count ?? 0, "attendee");
    const here = Boolean(joined && joined.roomId === room.room_id);
    parts.here.hidden = !here;
    parts.join.disabled = here;
  }

  async function load() {
    try {
      const { rooms } = await api("/rooms");
      loadedOnce = true;
      const ids = new Set(rooms.map((r) => r.room_id));
      for (const id of [...items.keys()]) if (!ids.has(id)) remove(id);
      rooms.forEach(upsert);
      render();
    } catch (error) {
      showAlert(describeError(error));
    }
  }

  async function onRoomUpdated(update) {
    if (update.status !== "active") {
      remove(update.room_id);
      return;
    }
    if (items.has(update.room_id)) {
      upsert(update); // title, status and count replace what we had
      return;
    }
    try {
      const room = await api(`/rooms/${encodeURIComponent(update.room_id)}`);
      if (room.status === "active") upsert({ ...room, ...update });
    } catch (error) {
      if (error.status !== 404) console.warn("rooms: could not fetch a new room", error);
    }
  }

  async function join(room, button) {
    button.disabled = true;
    try {
      if (joined && joined.roomId !== room.room_id) await leave({ quiet: true });
      const answer = await api(`/rooms/${encodeURIComponent(room.room_id)}/join`, { method: "POST" });
      joined = {
        roomId: room.room_id,
        title: room.title,
        meetingId: answer.Meeting.MeetingId,
        attendeeId: answer.Attendee.AttendeeId,
        mediaRegion: answer.Meeting.MediaRegion,
      };
      showJoined();
      announce(`You joined ${room.title}.`);
      focusHeading(panel.querySelector("h2"));
    } catch (error) {
      showAlert(describeError(error));
    } finally {
      for (const entry of items.values()) fill(entry);
    }
  }

  async function leave({ quiet = false } = {}) {
    if (!joined) return;
    const left = joined;
    try {
      await api(`/rooms/${encodeURIComponent(left.roomId)}/leave`, { method: "POST" });
    } catch (error) {
      if (error.status !== 404) {
        showAlert(describeError(error));
        return;
      }
    }
    joined = null;
    showJoined();
    for (const entry of items.values()) fill(entry);
    if (!quiet) {
      announce(`You left ${left.title}.`);
      const entry = items.get(left.roomId);
      if (entry) entry.parts.join.focus();
      else focusHeading(heading);
    }
  }

  function showJoined() {
    panel.hidden = !joined;
    if (!joined) {
      panel.replaceChildren();
      return;
    }
    panel.replaceChildren(
      h("h2", { id: "joined-heading", text: `You are in ${joined.title}` }),
      h(
        "dl",
        { class: "ids" },
        h("dt", { text: "MeetingId" }),
        h("dd", {}, h("code", { text: joined.meetingId })),
        h("dt", { text: "AttendeeId" }),
        h("dd", {}, h("code", { text: joined.attendeeId })),
      ),
      h("p", {
        class: "hint",
        text: "The console does not connect audio or video: a Chime SDK client joins the meeting with these ids.",
      }),
      h("button", { type: "button", text: "Leave", onclick: () => leave() }),
    );
  }

  showJoined();
  const tick = setInterval(() => {
    const now = Date.now() / 1000;
    for (const entry of [...items.values()]) {
      if (entry.room.end_at <= now) remove(entry.room.room_id);
      else fill(entry);
    }
  }, TICK_MS);
  const stops = [live.on("ready", load), live.on("room.updated", onRoomUpdated)];
  load();

  return {
    heading,
    unmount() {
      clearInterval(tick);
      stops.forEach((stop) => stop());
    },
  };
}

/** One list item; `parts` are the pieces `fill` updates in place, so focus survives updates. */
function roomItem(room, onJoin) {
  const id = `room-${room.room_id}`;
  const parts = {
    title: h("h2", { id: `${id}-title`, class: "room-title" }),
    topic: h("p", { class: "topic" }),
    timeLeft: h("span", { class: "time-left" }),
    count: h("span", { class: "count" }),
    here: h("span", { class: "badge", text: "You are here", hidden: true }),
    join: h("button", { type: "button", class: "primary", text: "Join", "aria-describedby": `${id}-title` }),
  };
  const entry = { room, parts, el: null };
  parts.join.addEventListener("click", () => onJoin(entry.room, parts.join));
  entry.el = h(
    "li",
    { class: "card room", "aria-labelledby": `${id}-title` },
    parts.title,
    parts.topic,
    h("p", { class: "meta" }, parts.timeLeft, ", ", parts.count, " ", parts.here),
    parts.join,
  );
  return entry;
}
