// The fetch wrapper every page uses: same-origin paths, the bearer token,
// Belfry's JSON errors ({"error": {"code", "message", "details"?}}) turned
// into ApiError, and wording a person understands (describeError).

import { currentToken } from "./auth.js";

export class ApiError extends Error {
  constructor({ status, code, message, details = null, retryAfter = null }) {
    super(message);
    this.name = "ApiError";
    this.status = status; // 0: the request never got an answer
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter; // seconds, from Retry-After (429, 503)
  }
}

let onUnauthorized = () => {};

/** The app decides what a 401 means (back to the sign-in page). */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

/** For calls made without api() (e.g. downloads) that got a 401. */
export function handleUnauthorized(error) {
  onUnauthorized(error);
}

/**
 * Call Belfry's API. `body`: a plain object (sent as JSON) or FormData (sent
 * as multipart, the browser sets the boundary). Answers the parsed JSON, or
 * null for 204. Throws ApiError for anything but 2xx.
 */
export async function api(path, { method = "GET", body, signal, auth = true } = {}) {
  const headers = { Accept: "application/json" };
  const token = currentToken();
  if (auth && token) headers.Authorization = `Bearer ${token}`;
  let payload;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError({
      status: 0,
      code: "network_error",
      message: "no answer from the server",
    });
  }
  if (response.status === 204) return null;
  const data = await readJson(response);
  if (response.ok) return data;
  const error = toApiError(response, data);
  if (error.status === 401 && auth) onUnauthorized(error);
  throw error;
}

async function readJson(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function toApiError(response, data) {
  const error = (data && data.error) || {};
  return new ApiError({
    status: response.status,
    code: error.code || `http_${response.status}`,
    message: error.message || response.statusText || "request failed",
    details: error.details ?? null,
    retryAfter: parseRetryAfter(response.headers.get("Retry-After")),
  });
}

/** Retry-After is seconds or an HTTP date; answers whole seconds (≥ 1) or null. */
export function parseRetryAfter(value) {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(1, Math.ceil(seconds));
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(1, Math.ceil((at - Date.now()) / 1000));
}

// --- what to tell a person ------------------------------------------------------

const BY_CODE = {
  // auth
  token_expired: "Your session has expired. Please sign in again.",
  invalid_token: "Your sign-in is no longer valid. Please sign in again.",
  unauthorized: "Please sign in again.",
  // scheduler
  title_taken: "Another room that has not ended already has this title. Choose another title.",
  start_in_past: "The start time is in the past. Choose a time from now on.",
  start_too_far: "The start time is too far ahead (at most a year).",
  room_started: "This room has already started; it can no longer be changed.",
  room_cancelled: "This room has been cancelled.",
  room_ended: "This room has ended.",
  concurrent_change: "Someone changed this room at the same time. Reload and try again.",
  invalid_cursor: "The list changed meanwhile. Reload the page.",
  // rooms
  room_not_found: "This room does not exist (any more).",
  room_not_active: "This room is not open: it has not started yet, or it has ended.",
  room_full: "This room is full.",
  // chat
  channel_not_found: "This conversation does not exist, or you may not read it.",
  not_a_member: "You are not a member of this conversation, so you cannot write here.",
  no_chat_role: "Chat is for customers and managers; your account is neither.",
  empty_content: "Write a message before sending.",
  content_too_long: "The message is too long.",
  too_many_mentions: "The message mentions too many people.",
  too_many_attachments: "The message has too many attachments.",
  attachment_too_large: "The file is too large to attach.",
  empty_file: "The file is empty.",
  assignment_changed: "Someone else changed the assignment at the same time. Try again.",
};

/** One sentence (or two) for the alert: what happened and what to do. */
export function describeError(error) {
  if (!(error instanceof ApiError)) {
    return "Something went wrong in the console. Reload the page and try again.";
  }
  const { status, code } = error;
  if (status === 0) return "Cannot reach Belfry. Check your connection and try again.";
  if (status === 429 || status === 503) {
    const when = error.retryAfter ? `in ${error.retryAfter} s` : "in a moment";
    return `Belfry is busy right now. Please try again ${when}.`;
  }
  if (code === "unsupported_content_type") {
    const allowed = error.details && error.details.allowed;
    return allowed
      ? `This type of file cannot be attached. Allowed: ${allowed.join(", ")}.`
      : "This type of file cannot be attached.";
  }
  if (code === "mention_refused" && Array.isArray(error.details)) {
    return `Some people cannot be mentioned here (${error.details
      .map((d) => `${d.user_id}: ${d.reason}`)
      .join("; ")}).`;
  }
  if (code === "attachment_refused") {
    return "An attachment could not be used (it may already belong to another message). Attach the file again.";
  }
  if (BY_CODE[code]) return BY_CODE[code];
  if (status === 401) return BY_CODE.unauthorized;
  if (status === 403) return "You are not allowed to do that.";
  if (status === 404) return "Not found: it may have been removed.";
  if (status === 409) return `That conflicts with the current state: ${error.message}.`;
  if (status === 413) return BY_CODE.attachment_too_large;
  if (status === 415) return "This kind of content is not accepted.";
  if (status === 422 || status === 400) return `Please check your input: ${error.message}.`;
  if (status >= 500) return "Something went wrong on Belfry's side. Please try again.";
  return error.message;
}
