// The console's entry point: hash routing, the header, the session and the
// one WebSocket. Pages (signin.js, rooms.js, schedule.js, chat.js) each
// export a mount function answering {heading, update?, unmount?}.
//
//   #/signin             sign in (Cognito, or a pasted token in local mode)
//   #/rooms              the active rooms (the landing page)
//   #/chat[/<channel>]   chat
//   #/schedule           the schedule (admins)

import { setUnauthorizedHandler } from "./api.js";
import { currentSession, hasExpiredToken, signOut } from "./auth.js";
import { mountChat } from "./chat.js";
import { Live } from "./live.js";
import { leaveJoinedRoom, mountRooms } from "./rooms.js";
import { mountSchedule } from "./schedule.js";
import { mountSignIn } from "./signin.js";
import { announce, clearAlert, flashAlert, focusHeading, showFlashedAlert } from "./ui.js";

const PAGES = {
  signin: { title: "Sign in", mount: mountSignIn },
  rooms: { title: "Active rooms", mount: mountRooms, nav: "rooms" },
  chat: { title: "Chat", mount: mountChat, nav: "chat" },
  schedule: { title: "Schedule", mount: mountSchedule, nav: "schedule" },
};
const HOME = "#/rooms";

const live = new Live();
const pageSlot = document.getElementById("page");
let page = null; // {name, view: what the mount function answered}
let returnTo = null; // where to go after signing in

/** "#/chat/customer-carl" → {name: "chat", channelId: "customer-carl"}. */
function parse(hash) {
  const [name, ...rest] = hash.replace(/^#\/?/, "").split("/");
  if (!PAGES[name]) return null;
  const route = { name };
  if (name === "chat" && rest.length) route.channelId = decodeURIComponent(rest.join("/"));
  return route;
}

function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

function render() {
  const route = parse(location.hash);
  const session = currentSession();

  if (!session) {
    if (hasExpiredToken()) {
      signOut();
      flashAlert("Your session has expired. Please sign in again.");
    }
    live.stop();
    if (!route || route.name !== "signin") {
      if (route) returnTo = location.hash;
      location.replace("#/signin");
      return;
    }
  } else if (!route || route.name === "signin") {
    location.replace(HOME);
    return;
  } else if (live.state === "offline") {
    live.start(session.token);
  }

  renderHeader(session, route);

  if (page && page.name === route.name && page.view.update && page.view.update(route)) return;
  if (page && page.view.unmount) page.view.unmount();
  pageSlot.replaceChildren();
  clearAlert();
  const spec = PAGES[route.name];
  document.title = `${spec.title} – Belfry`;
  const view = spec.mount(pageSlot, { session, live, params: route, onSignedIn });
  page = { name: route.name, view };
  showFlashedAlert();
  focusHeading(view.heading);
}

function onSignedIn(session) {
  live.start(session.token);
  const target = returnTo && returnTo !== "#/signin" ? returnTo : HOME;
  returnTo = null;
  go(target);
}

function renderHeader(session, route) {
  const signedIn = Boolean(session);
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("who").hidden = !signedIn;
  if (!signedIn) return;
  document.getElementById("who-name").textContent = session.username;
  document.getElementById("who-role").textContent = session.role;
  document.getElementById("nav-schedule").hidden = session.role !== "admin";
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.page === PAGES[route.name].nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// --- signing out: by the button, or because the server said 401 -------------------

async function signOutNow() {
  await leaveJoinedRoom();
  live.stop();
  signOut();
  announce("You have signed out.");
  go("#/signin");
}

let endingSession = false;
function endSession(message) {
  if (endingSession) return;
  endingSession = true;
  live.stop();
  signOut();
  flashAlert(message);
  go("#/signin");
  endingSession = false;
}

setUnauthorizedHandler((error) => {
  endSession(
    error.code === "token_expired"
      ? "Your session has expired. Please sign in again."
      : "Your sign-in is no longer valid. Please sign in again.",
  );
});
live.on("unauthorized", () => endSession("Your session has ended. Please sign in again."));

const liveState = document.getElementById("live-state");
const LIVE_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};
live.on("state", (state) => {
  liveState.textContent = LIVE_TEXT[state];
  liveState.dataset.state = state;
});

document.getElementById("signout").addEventListener("click", signOutNow);
document.getElementById("skip").addEventListener("click", (event) => {
  event.preventDefault();
  if (page) focusHeading(page.view.heading);
});
window.addEventListener("hashchange", render);
render();
