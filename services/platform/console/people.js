// Who chat knows by name: GET /chat/people → {"people": [{user_id, username, role}]}.
// Staff see everyone; a customer sees the managers and themselves. Used to
// show senders by username, to suggest @mentions and to turn "@mia" into
// mia's user id when a message is sent.

import { api } from "./api.js";

const REFRESH_AT_MOST_EVERY_MS = 30_000;

export class People {
  constructor() {
    this.byId = new Map();
    this.loadedAt = 0;
    this.loading = null;
  }

  /** Load (or reload) the directory; a failure leaves what is known. */
  async load() {
    if (!this.loading) {
      this.loading = api("/chat/people")
        .then((answer) => {
          this.byId = new Map((answer.people || []).map((p) => [p.user_id, p]));
          this.loadedAt = Date.now();
        })
        .catch((error) => {
          console.warn("people: GET /chat/people failed", error);
        })
        .finally(() => {
          this.loading = null;
        });
    }
    return this.loading;
  }

  /** Reload if someone unknown shows up (a new customer), not more than twice a minute. */
  async refreshFor(userId) {
    if (this.byId.has(userId) || Date.now() - this.loadedAt < REFRESH_AT_MOST_EVERY_MS) return false;
    await this.load();
    return this.byId.has(userId);
  }

  /** The username of a user id, or the id itself when unknown. */
  nameOf(userId) {
    const person = this.byId.get(userId);
    return person ? person.username : userId;
  }

  all() {
    return [...this.byId.values()];
  }

  /** Usernames starting with `prefix` (case-insensitive), for suggestions. */
  suggest(prefix, allowed = () => true, limit = 8) {
    const wanted = prefix.toLowerCase();
    return this.all()
      .filter((p) => p.username.toLowerCase().startsWith(wanted) && allowed(p))
      .sort((a, b) => a.username.localeCompare(b.username))
      .slice(0, limit);
  }

  /**
   * The user ids mentioned in `text` as "@username": an "@" at the start or
   * after a space or punctuation, followed by a known username (the longest
   * that fits, so "@mia.b" is not "@mia") that is not followed by more name
   * characters. Unknown names stay plain text.
   */
  mentionsIn(text) {
    const people = this.all().sort((a, b) => b.username.length - a.username.length);
    const found = new Set();
    const lower = text.toLowerCase();
    for (let at = lower.indexOf("@"); at !== -1; at = lower.indexOf("@", at + 1)) {
      if (at > 0 && !/[\s([{,;:!?"']/.test(lower[at - 1])) continue;
      const rest = lower.slice(at + 1);
      const person = people.find((p) => {
        const name = p.username.toLowerCase();
        return rest.startsWith(name) && endsName(rest.slice(name.length));
      });
      if (person) found.add(person.user_id);
    }
    return [...found];
  }
}

/** Does the text after a username end it? "@mia", "@mia, hi" and "@mia." (the
 * end of a sentence) do; "@mia.b" and "@mia_2" are other names. */
function endsName(after) {
  if (after === "" || /^[.-]+(\s|$)/.test(after)) return true;
  return !/^[\p{L}\p{N}_.@-]/u.test(after);
}
