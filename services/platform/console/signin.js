// #/signin: username and password against Cognito (GET /auth/config says
// where), or, when the platform runs in "local" mode, a pasted token.

import { authConfig, signInWithPassword, signInWithToken } from "./auth.js";
import { clearAlert, h, showAlert } from "./ui.js";

export function mountSignIn(container, { onSignedIn }) {
  const heading = h("h1", { text: "Sign in to Belfry" });
  const slot = h("div", {}, h("p", { text: "Loading…" }));
  container.append(h("section", { class: "card narrow" }, heading, slot));

  authConfig()
    .then((config) => {
      slot.replaceChildren(config.mode === "local" ? tokenForm(onSignedIn) : passwordForm(onSignedIn));
    })
    .catch((error) => {
      slot.replaceChildren(h("p", { text: "Signing in is not possible right now." }));
      showAlert(error.message);
    });

  return { heading };
}

function passwordForm(onSignedIn) {
  const username = h("input", {
    id: "signin-username",
    name: "username",
    autocomplete: "username",
    autocapitalize: "none",
    spellcheck: "false",
    required: true,
  });
  const password = h("input", {
    id: "signin-password",
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const button = h("button", { type: "submit", class: "primary", text: "Sign in" });
  const form = h(
    "form",
    { class: "stack", novalidate: true },
    field("signin-username", "Username", username),
    field("signin-password", "Password", password),
    button,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!username.value.trim() || !password.value) {
      showAlert("Enter your username and your password.");
      (username.value.trim() ? password : username).focus();
      return;
    }
    button.disabled = true;
    button.textContent = "Signing in…";
    try {
      const session = await signInWithPassword(username.value.trim(), password.value);
      clearAlert();
      onSignedIn(session);
    } catch (error) {
      password.value = "";
      showAlert(error.message);
      password.focus();
    } finally {
      button.disabled = false;
      button.textContent = "Sign in";
    }
  });
  return form;
}

function tokenForm(onSignedIn) {
  const token = h("textarea", { id: "signin-token", rows: 4, spellcheck: "false", required: true });
  const form = h(
    "form",
    { class: "stack", novalidate: true },
    h("p", {}, "This platform runs in local mode: paste an access token, e.g. from ", h("code", { text: "make token SUB=alice GROUPS=admin" }), "."),
    field("signin-token", "Access token", token),
    h("button", { type: "submit", class: "primary", text: "Sign in" }),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    try {
      const session = signInWithToken(token.value);
      clearAlert();
      onSignedIn(session);
    } catch (error) {
      showAlert(error.message);
      token.focus();
    }
  });
  return form;
}

function field(id, label, control) {
  return h("div", { class: "field" }, h("label", { for: id, text: label }), control);
}
