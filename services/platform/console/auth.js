// Signing in: GET /auth/config says where; Cognito's InitiateAuth
// (USER_PASSWORD_AUTH) answers an access token, kept in sessionStorage (this
// tab only, gone when it closes). In "local" mode a developer pastes a token.
// The token's payload is decoded for display only: the server verifies it.

const STORAGE_KEY = "belfry.accessToken";

let config = null;

/** `{mode: "cognito", region, user_pool_id, client_id, endpoint}` or `{mode: "local"}`. */
export async function authConfig() {
  if (config) return config;
  let response;
  try {
    response = await fetch("/auth/config", { headers: { Accept: "application/json" } });
  } catch {
    throw new SignInError("Cannot reach Belfry to find out how to sign in. Try again.");
  }
  if (!response.ok) throw new SignInError("Belfry did not say how to sign in. Try again later.");
  config = await response.json();
  return config;
}

export class SignInError extends Error {
  constructor(message) {
    super(message);
    this.name = "SignInError";
  }
}

/** Cognito's errors (`__type`) → what a person should read. */
function cognitoMessage(type, message) {
  const kind = (type || "").split("#").pop();
  switch (kind) {
    case "NotAuthorizedException":
    case "UserNotFoundException":
      return "Wrong username or password.";
    case "PasswordResetRequiredException":
      return "Your password must be reset before you can sign in.";
    case "UserNotConfirmedException":
      return "Your account is not confirmed yet.";
    case "TooManyRequestsException":
    case "LimitExceededException":
      return "Too many sign-in attempts. Wait a moment and try again.";
    default:
      return `Signing in failed${message ? `: ${message}` : ""}.`;
  }
}

/** Sign in with a username and password at Cognito; answers the session. */
export async function signInWithPassword(username, password) {
  const { endpoint, client_id: clientId } = await authConfig();
  let response;
  try {
    response = await fetch(endpoint, {
      method: "POST",
      headers: {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
      },
      body: JSON.stringify({
        AuthFlow: "USER_PASSWORD_AUTH",
        ClientId: clientId,
        AuthParameters: { USERNAME: username, PASSWORD: password },
      }),
    });
  } catch {
    throw new SignInError("Cannot reach the sign-in service. Check your connection and try again.");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new SignInError(cognitoMessage(data.__type, data.message));
  if (data.ChallengeName) {
    throw new SignInError(
      `Your account needs a further step (${data.ChallengeName}) that the console does not support.`,
    );
  }
  const token = data.AuthenticationResult && data.AuthenticationResult.AccessToken;
  if (!token) throw new SignInError("The sign-in service answered without a token.");
  return useToken(token);
}

/** Local mode: a token from `make token`. */
export function signInWithToken(token) {
  return useToken(token.trim());
}

function useToken(token) {
  const session = sessionOf(token);
  if (!session) throw new SignInError("That is not an access token (a JWT).");
  if (session.expired) throw new SignInError("That token has expired.");
  sessionStorage.setItem(STORAGE_KEY, token);
  return session;
}

export function signOut() {
  sessionStorage.removeItem(STORAGE_KEY);
}

export function currentToken() {
  return sessionStorage.getItem(STORAGE_KEY);
}

/** The signed-in person, or null (no token, or a token past its `exp`). */
export function currentSession() {
  const token = currentToken();
  if (!token) return null;
  const session = sessionOf(token);
  if (!session || session.expired) return null;
  return session;
}

/** True if a token is stored but no longer usable (to say "expired" on the sign-in page). */
export function hasExpiredToken() {
  const token = currentToken();
  return Boolean(token) && !currentSession();
}

const ROLES = ["admin", "manager", "customer"]; // the first group found wins

function sessionOf(token) {
  const claims = decodePayload(token);
  if (!claims || !claims.sub) return null;
  const groups = Array.isArray(claims["cognito:groups"]) ? claims["cognito:groups"] : [];
  return {
    token,
    userId: claims.sub,
    username: claims.username || claims["cognito:username"] || claims.sub,
    groups,
    role: ROLES.find((r) => groups.includes(r)) || "no role",
    expiresAt: typeof claims.exp === "number" ? claims.exp : null,
    expired: typeof claims.exp === "number" && claims.exp * 1000 <= Date.now(),
  };
}

/** A JWT's middle part, base64url JSON. For display only: not verified here. */
function decodePayload(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}
