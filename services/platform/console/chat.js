// #/chat and #/chat/<channel id>: customer ↔ manager chat.
//
//   GET  /chat/channels?cursor=               a customer: their channel; staff: every channel
//   GET  /chat/people                          usernames (senders, @mention suggestions)
//   GET  /notifications/mentions?unread=true   unread mentions, counted per channel
//   POST /notifications/mentions/{id}/read     when their channel is opened
//   GET  /chat/channels/{id}/messages?cursor=  history, newest first
//   POST /chat/attachments                     multipart `file` → {attachment_id, …}
//   POST /chat/channels/{id}/messages          {content, mentions: [user_id], attachment_ids}
//   GET  /chat/attachments/{id}                302 → a presigned download (see download())
//   live: message.posted, user.mentioned, channel.joined

import { api, ApiError, describeError, handleUnauthorized } from "./api.js";
import { currentToken } from "./auth.js";
import { People } from "./people.js";
import { announce, clearAlert, focusHeading, formatBytes, formatPosted, h, showAlert, srOnly } from "./ui.js";

const MENTION_PAGES = 5; // at most 500 unread mentions are counted
const SUGGESTIONS = 8;

export function mountChat(container, { session, live, params }) {
  const staff = session.role === "manager" || session.role === "admin";
  const people = new People();
  const channels = new Map(); // channel_id → channel
  const unread = new Map(); // channel_id → Set of mention ids
  const fresh = new Set(); // channel ids with messages not seen yet (staff)
  let channelCursor = null;
  let current = null; // the open conversation
  let wanted = params.channelId || null;

  const heading = h("h1", { text: "Chat" });
  const main = h("section", { class: "conversation-slot" });
  const sidebar = staff ? channelSidebar() : null;
  container.append(heading, h("div", { class: staff ? "chat-layout" : "chat-single" }, sidebar?.el, main));

  // --- the channel list (staff) ---------------------------------------------------

  function channelSidebar() {
    const list = h("ul", { class: "channels", "aria-labelledby": "customers-heading", "aria-live": "polite" });
    const empty = h("p", { class: "empty", text: "Loading conversations…" });
    const more = h("button", { type: "button", text: "Show more customers", hidden: true });
    more.addEventListener("click", () => loadChannels({ append: true }));
    const el = h(
      "section",
      { class: "card sidebar", "aria-labelledby": "customers-heading" },
      h("h2", { id: "customers-heading", text: "Customers" }),
      list,
      empty,
      more,
    );
    return { el, list, empty, more };
  }

  function renderSidebar() {
    if (!sidebar) return;
    const byCustomer = new Map();
    for (const channel of channels.values()) {
      const pair = byCustomer.get(channel.customer_id) || {};
      pair[channel.kind] = channel;
      byCustomer.set(channel.customer_id, pair);
    }
    const rows = [...byCustomer.entries()]
      .map(([customerId, pair]) => ({ customerId, name: people.nameOf(customerId), pair }))
      .sort((a, b) => a.name.localeCompare(b.name));
    sidebar.list.replaceChildren(
      ...rows.map(({ customerId, name, pair }) => {
        // The customer's name is their channel's link; the managers channel sits below it.
        const nameId = `customer-${cssId(customerId)}`;
        const label = h("span", { id: nameId, text: name });
        return h(
          "li",
          { class: "customer-row", "aria-labelledby": nameId },
          pair.customer ? channelLink(pair.customer, label, null) : h("span", { class: "customer-name" }, label),
          pair.managers ? channelLink(pair.managers, "Managers only", nameId) : null,
        );
      }),
    );
    sidebar.empty.hidden = rows.length > 0;
    sidebar.empty.textContent = "No customer has a conversation yet.";
    sidebar.more.hidden = !channelCursor;
  }

  function channelLink(channel, text, describedBy) {
    const count = unread.get(channel.channel_id)?.size || 0;
    const open = current && current.channel.channel_id === channel.channel_id;
    const link = h(
      "a",
      {
        href: `#/chat/${encodeURIComponent(channel.channel_id)}`,
        class: `channel-link kind-${channel.kind}`,
        "aria-current": open ? "page" : null,
        "aria-describedby": describedBy,
      },
      text,
      count > 0
        ? h("span", { class: "badge mention-count", title: "unread mentions" }, String(count), srOnly(count === 1 ? " unread mention" : " unread mentions"))
        : null,
      fresh.has(channel.channel_id) && !open ? h("span", { class: "dot", title: "new messages" }, srOnly(" new messages")) : null,
    );
    return h(
      "div",
      { class: `channel-row kind-${channel.kind}` },
      link,
      channel.is_member ? null : h("span", { class: "not-member", text: "not joined" }),
    );
  }

  // --- loading ------------------------------------------------------------------------

  async function loadChannels({ append = false } = {}) {
    const query = append && channelCursor ? `?cursor=${encodeURIComponent(channelCursor)}` : "";
    const page = await api(`/chat/channels${query}`);
    if (!append) channels.clear();
    for (const channel of page.channels) channels.set(channel.channel_id, channel);
    channelCursor = page.next_cursor || null;
    renderSidebar();
  }

  async function loadUnreadMentions() {
    const found = new Map();
    let cursor = null;
    for (let page = 0; page < MENTION_PAGES; page += 1) {
      const query = new URLSearchParams({ unread: "true", limit: "100" });
      if (cursor) query.set("cursor", cursor);
      const answer = await api(`/notifications/mentions?${query}`);
      for (const mention of answer.mentions) {
        if (!mention.channel_id || mention.read) continue;
        if (!found.has(mention.channel_id)) found.set(mention.channel_id, new Set());
        found.get(mention.channel_id).add(mention.mention_id);
      }
      cursor = answer.next_cursor;
      if (!cursor) break;
    }
    unread.clear();
    for (const [channelId, ids] of found) unread.set(channelId, ids);
  }

  async function markRead(channelId) {
    const ids = [...(unread.get(channelId) || [])];
    unread.delete(channelId);
    renderSidebar();
    await Promise.all(
      ids.map((id) =>
        api(`/notifications/mentions/${encodeURIComponent(id)}/read`, { method: "POST" }).catch(() => {}),
      ),
    );
  }

  async function start() {
    try {
      await Promise.all([people.load(), loadChannels(), loadUnreadMentions().catch(() => {})]);
      renderSidebar();
      showWanted();
    } catch (error) {
      showAlert(describeError(error));
      main.replaceChildren(h("p", { class: "empty", text: "The conversations could not be loaded." }));
    }
  }

  /** Open the channel the route names (staff), or the customer's own channel. */
  function showWanted() {
    let channel = null;
    if (staff) channel = wanted ? channels.get(wanted) : null;
    else channel = [...channels.values()].find((c) => c.kind === "customer") || null;
    if (current && channel && current.channel.channel_id === channel.channel_id) return;
    if (!channel) {
      current = null;
      main.replaceChildren(placeholder());
      renderSidebar();
      return;
    }
    current = conversation(channel);
    fresh.delete(channel.channel_id);
    main.replaceChildren(current.el);
    renderSidebar();
    current.load();
    markRead(channel.channel_id);
  }

  function placeholder() {
    if (!staff) {
      return h(
        "div",
        { class: "card" },
        h("h2", { text: "No conversation yet" }),
        h("p", { text: "As soon as a manager is assigned to you, your conversation appears here." }),
      );
    }
    if (wanted) {
      return h("div", { class: "card" }, h("h2", { text: "Conversation not found" }), h("p", { text: "Choose one from the list." }));
    }
    return h("div", { class: "card" }, h("h2", { text: "Choose a conversation" }), h("p", { text: "Pick a customer's conversation, or the managers-only channel beside it." }));
  }

  // --- one conversation -----------------------------------------------------------------

  function channelTitle(channel) {
    if (channel.kind === "managers") return `Managers about ${people.nameOf(channel.customer_id)}`;
    if (staff) return `Conversation with ${people.nameOf(channel.customer_id)}`;
    return channel.manager_id ? `Your conversation with ${people.nameOf(channel.manager_id)}` : "Your conversation";
  }

  function conversation(channel) {
    const title = h("h2", { id: "conversation-heading", text: channelTitle(channel) });
    const note = h("p", { class: "hint" });
    const older = h("button", { type: "button", text: "Load older messages", hidden: true });
    const list = h("ol", { class: "messages", "aria-labelledby": "conversation-heading", "aria-live": "polite" });
    const empty = h("p", { class: "empty", text: "Loading messages…" });
    const scroller = h("div", { class: "messages-scroll", tabindex: "0", role: "region", "aria-label": "History" }, older, list, empty);
    const composer = messageComposer(channel);
    const el = h("section", { class: "card conversation", "aria-labelledby": "conversation-heading" }, title, note, scroller, composer.el);
    const shown = new Set(); // message ids
    let cursor = null;

    function updateNote() {
      note.hidden = !staff || channel.is_member;
      note.textContent =
        session.role === "manager"
          ? "You are not a member of this conversation yet: sending a message joins you."
          : "You read this conversation as an admin; you can write only where you are a member.";
    }
    updateNote();

    function messageItem(message) {
      const own = message.sender_id === session.userId;
      return h(
        "li",
        { class: `message${own ? " own" : ""}`, dataset: { messageId: message.message_id, senderId: message.sender_id } },
        h(
          "p",
          { class: "message-head" },
          h("span", { class: "sender", text: people.nameOf(message.sender_id) }),
          " ",
          h("time", { datetime: message.posted_at, text: formatPosted(message.posted_at) }),
        ),
        h("p", { class: "content" }, withMentions(message.content)),
        message.attachments && message.attachments.length
          ? h("ul", { class: "attachments", "aria-label": "Attachments" }, message.attachments.map(attachmentItem))
          : null,
      );
    }

    function nearBottom() {
      return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
    }

    function scrollToBottom() {
      scroller.scrollTop = scroller.scrollHeight;
    }

    /** Add messages (any order) where they belong: the list is oldest first. */
    function add(messages) {
      for (const message of messages) {
        if (shown.has(message.message_id)) continue;
        shown.add(message.message_id);
        const item = messageItem(message);
        const after = [...list.children].find((li) => li.dataset.messageId > message.message_id);
        list.insertBefore(item, after || null);
        if (!people.byId.has(message.sender_id)) {
          people.refreshFor(message.sender_id).then((found) => found && renameSenders());
        }
      }
      empty.hidden = list.children.length > 0;
      empty.textContent = "No messages yet. Say hello!";
    }

    function renameSenders() {
      for (const li of list.children) {
        const sender = li.querySelector(".sender");
        const id = li.dataset.senderId;
        if (sender && id) sender.textContent = people.nameOf(id);
      }
      title.textContent = channelTitle(channel);
    }

    async function load({ more = false } = {}) {
      const query = more && cursor ? `?cursor=${encodeURIComponent(cursor)}` : "";
      const before = scroller.scrollHeight;
      list.setAttribute("aria-busy", "true");
      try {
        const page = await api(`/chat/channels/${encodeURIComponent(channel.channel_id)}/messages${query}`);
        if (!more) {
          list.replaceChildren();
          shown.clear();
        }
        add(page.messages);
        cursor = page.next_cursor || null;
        older.hidden = !cursor;
        if (more) scroller.scrollTop += scroller.scrollHeight - before;
        else scrollToBottom();
      } catch (error) {
        empty.textContent = "The messages could not be loaded.";
        showAlert(describeError(error));
      } finally {
        list.removeAttribute("aria-busy");
      }
    }
    older.addEventListener("click", () => load({ more: true }));

    composer.onSent = (message) => {
      channel.is_member = true; // a manager who posts is joined
      updateNote();
      add([message]);
      scrollToBottom();
      renderSidebar();
    };

    return {
      el,
      channel,
      title,
      load,
      receive(message) {
        const follow = nearBottom();
        add([message]);
        if (follow) scrollToBottom();
      },
      membershipChanged: updateNote,
    };
  }

  /** The text, with "@name" tokens emphasised (as text nodes, never HTML). */
  function withMentions(text) {
    const parts = [];
    const pattern = /(^|[\s([{,;:!?"'])(@[\p{L}\p{N}_.@-]*[\p{L}\p{N}_])/gu;
    let last = 0;
    for (const match of text.matchAll(pattern)) {
      const start = match.index + match[1].length;
      parts.push(text.slice(last, start), h("strong", { class: "mention", text: match[2] }));
      last = start + match[2].length;
    }
    parts.push(text.slice(last));
    return parts;
  }

  function attachmentItem(attachment) {
    const link = h("a", {
      href: `/chat/attachments/${encodeURIComponent(attachment.attachment_id)}`,
      text: attachment.name,
    });
    link.addEventListener("click", (event) => {
      event.preventDefault();
      download(attachment);
    });
    return h("li", {}, link, ` (${formatBytes(attachment.size)})`);
  }

  // --- the composer ------------------------------------------------------------------------

  function messageComposer(channel) {
    const message = h("textarea", {
      id: "chat-message",
      name: "message",
      rows: 3,
      "aria-autocomplete": "list",
      "aria-controls": "mention-suggestions",
      "aria-describedby": "chat-message-hint",
    });
    const files = h("input", { id: "chat-files", name: "files", type: "file", multiple: true });
    const send = h("button", { type: "submit", class: "primary", text: "Send" });
    const suggestions = h("ul", { id: "mention-suggestions", class: "suggestions", role: "listbox", "aria-label": "People to mention", hidden: true });
    const suggestionStatus = h("p", { class: "visually-hidden", "aria-live": "polite" });
    const el = h(
      "form",
      { class: "composer", novalidate: true },
      h(
        "div",
        { class: "field" },
        h("label", { for: "chat-message", text: "Message" }),
        h("p", { id: "chat-message-hint", class: "hint", text: "Type @ and a name to mention someone. Enter sends, Shift+Enter starts a new line." }),
        h("div", { class: "suggest-anchor" }, message, suggestions),
        suggestionStatus,
      ),
      h("div", { class: "field" }, h("label", { for: "chat-files", text: "Attach files" }), files),
      h("div", { class: "actions" }, send),
    );
    const uploaded = new Map(); // File → attachment id, so a retry does not upload twice
    const composer = { el, onSent: () => {} };

    // Whom the server lets us mention here (docs/chat.md, "Posting"); it still decides.
    const mayMention = (person) => {
      if (person.user_id === session.userId) return false;
      if (channel.kind === "managers") return person.role === "manager";
      if (!staff) return person.role === "manager";
      return person.role === "manager" || person.user_id === channel.customer_id;
    };

    // @mention suggestions: a listbox driven from the textarea
    let options = [];
    let active = 0;
    let query = null; // {start, text}: the "@…" being typed

    function findQuery() {
      const before = message.value.slice(0, message.selectionStart);
      const match = /(^|[\s([{,;:!?"'])@([^\s@]*)$/.exec(before);
      return match ? { start: before.length - match[2].length - 1, text: match[2] } : null;
    }

    function renderSuggestions() {
      query = findQuery();
      options = query ? people.suggest(query.text, mayMention, SUGGESTIONS) : [];
      active = Math.min(active, Math.max(0, options.length - 1));
      suggestions.hidden = options.length === 0;
      suggestions.replaceChildren(
        ...options.map((person, index) => {
          const option = h(
            "li",
            { id: `mention-option-${index}`, role: "option", "aria-selected": index === active ? "true" : "false", class: index === active ? "active" : "" },
            h("span", { text: person.username }),
            h("span", { class: "role", text: ` ${person.role}` }),
          );
          option.addEventListener("mousedown", (event) => {
            event.preventDefault(); // keep the focus in the textarea
            pick(person);
          });
          return option;
        }),
      );
      if (options.length) message.setAttribute("aria-activedescendant", `mention-option-${active}`);
      else message.removeAttribute("aria-activedescendant");
      suggestionStatus.textContent = options.length
        ? `${options.length} ${options.length === 1 ? "person" : "people"} to mention, use the up and down arrows and Enter`
        : "";
    }

    function closeSuggestions() {
      options = [];
      suggestions.hidden = true;
      message.removeAttribute("aria-activedescendant");
      suggestionStatus.textContent = "";
    }

    function pick(person) {
      const at = query ? query.start : message.selectionStart;
      const end = message.selectionStart;
      const insert = `@${person.username} `;
      message.setRangeText(insert, at, end, "end");
      closeSuggestions();
      message.focus();
    }

    message.addEventListener("input", () => {
      active = 0;
      renderSuggestions();
    });
    message.addEventListener("click", renderSuggestions);
    message.addEventListener("blur", () => setTimeout(closeSuggestions, 100));
    message.addEventListener("keydown", (event) => {
      if (options.length) {
        if (event.key === "ArrowDown" || event.key === "ArrowUp") {
          event.preventDefault();
          active = (active + (event.key === "ArrowDown" ? 1 : options.length - 1)) % options.length;
          renderSuggestions();
          return;
        }
        if (event.key === "Enter" || event.key === "Tab") {
          event.preventDefault();
          pick(options[active]);
          return;
        }
        if (event.key === "Escape") {
          event.preventDefault();
          closeSuggestions();
          return;
        }
      }
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        el.requestSubmit();
      }
    });

    el.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearAlert();
      const content = message.value;
      if (!content.trim()) {
        showAlert("Write a message before sending.");
        message.focus();
        return;
      }
      send.disabled = true;
      send.textContent = "Sending…";
      try {
        const attachmentIds = [];
        for (const file of files.files) {
          if (!uploaded.has(file)) {
            const form = new FormData();
            form.append("file", file, file.name);
            announce(`Uploading ${file.name}…`);
            const attachment = await api("/chat/attachments", { method: "POST", body: form });
            uploaded.set(file, attachment.attachment_id);
          }
          attachmentIds.push(uploaded.get(file));
        }
        const mentions = people.mentionsIn(content).filter((id) => id !== session.userId);
        const posted = await api(`/chat/channels/${encodeURIComponent(channel.channel_id)}/messages`, {
          method: "POST",
          body: { content, mentions, attachment_ids: attachmentIds },
        });
        message.value = "";
        files.value = "";
        uploaded.clear();
        composer.onSent(posted);
        announce("Message sent.");
        message.focus();
      } catch (error) {
        if (error instanceof ApiError && error.code === "attachment_refused") uploaded.clear();
        showAlert(describeError(error));
      } finally {
        send.disabled = false;
        send.textContent = "Send";
      }
    });
    return composer;
  }

  // --- live frames ----------------------------------------------------------------------------

  let reloadTimer = null;
  function reloadChannelsSoon() {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(async () => {
      try {
        await Promise.all([people.load(), loadChannels()]);
        if (!current) showWanted();
      } catch (error) {
        console.warn("chat: reloading channels failed", error);
      }
    }, 300);
  }

  function onMessagePosted(message) {
    if (current && current.channel.channel_id === message.channel_id) {
      current.receive(message);
      return;
    }
    if (!channels.has(message.channel_id)) reloadChannelsSoon();
    fresh.add(message.channel_id);
    renderSidebar();
  }

  function onUserMentioned(mention) {
    if (current && current.channel.channel_id === mention.channel_id) {
      api(`/notifications/mentions/${encodeURIComponent(mention.mention_id)}/read`, { method: "POST" }).catch(() => {});
      return;
    }
    if (!unread.has(mention.channel_id)) unread.set(mention.channel_id, new Set());
    unread.get(mention.channel_id).add(mention.mention_id);
    const where = channels.get(mention.channel_id);
    announce(`${people.nameOf(mention.mentioned_by)} mentioned you${where ? ` (${channelTitle(where)})` : ""}.`);
    renderSidebar();
  }

  function onChannelJoined(joined) {
    const channel = channels.get(joined.channel_id);
    if (!channel) {
      reloadChannelsSoon(); // a new assignment: the customer's first conversation, or a new customer
      return;
    }
    if (joined.user_id === session.userId) {
      channel.is_member = true;
      if (current && current.channel.channel_id === channel.channel_id) {
        current.channel.is_member = true;
        current.membershipChanged();
      }
      renderSidebar();
    }
  }

  async function onReady({ first, resumed }) {
    if (first) return; // start() has just loaded everything
    try {
      await loadUnreadMentions();
      renderSidebar();
      if (!resumed) {
        await loadChannels();
        if (current) current.load();
      }
    } catch (error) {
      console.warn("chat: refreshing after a reconnect failed", error);
    }
  }

  const stops = [
    live.on("message.posted", onMessagePosted),
    live.on("user.mentioned", onUserMentioned),
    live.on("channel.joined", onChannelJoined),
    live.on("ready", onReady),
  ];
  start();

  return {
    heading,
    /** #/chat/<id> → #/chat/<other id>: switch the conversation, keep the page. */
    update(next) {
      wanted = next.channelId || null;
      clearAlert();
      showWanted();
      focusHeading(current ? current.title : main.querySelector("h2") || heading);
      return true;
    },
    unmount() {
      clearTimeout(reloadTimer);
      stops.forEach((stop) => stop());
    },
  };
}

/**
 * Download an attachment. GET /chat/attachments/{id} needs the bearer token,
 * which a plain link cannot send, and answers 302 to a presigned URL of the
 * file store. So: fetch it with the Authorization header and let fetch follow
 * the redirect (the browser drops the header on the cross-origin hop; the
 * presigned URL is its own authorization), then save the body under its name.
 * This needs the file store to answer CORS for GET (the embedded moto server
 * does; an S3 bucket needs a CORS rule, see docs/console.md).
 */
async function download(attachment) {
  clearAlert();
  let response;
  try {
    response = await fetch(`/chat/attachments/${encodeURIComponent(attachment.attachment_id)}`, {
      headers: { Authorization: `Bearer ${currentToken()}` },
    });
  } catch {
    showAlert(`${attachment.name} could not be downloaded: no answer from the file store (it may not allow downloads from this page).`);
    return;
  }
  if (!response.ok) {
    const body = await response.json().catch(() => null);
    const error = new ApiError({
      status: response.status,
      code: body?.error?.code || `http_${response.status}`,
      message: body?.error?.message || response.statusText,
    });
    if (error.status === 401 && !response.redirected) {
      handleUnauthorized(error);
      return;
    }
    if (response.redirected) showAlert(`${attachment.name} could not be downloaded: the download link has expired. Try again.`);
    else showAlert(describeError(error));
    return;
  }
  const url = URL.createObjectURL(await response.blob());
  const link = h("a", { href: url, download: attachment.name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  announce(`Downloaded ${attachment.name}.`);
}

/** A string safe inside an id attribute and a CSS selector. */
function cssId(value) {
  return String(value).replace(/[^A-Za-z0-9_-]/g, "_");
}
