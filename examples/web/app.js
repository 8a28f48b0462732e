// The example page's whole client: plain fetch, no framework, no build step.

import { apiBase as configuredApiBase } from "./config.js";

// Where the API is: `apiBase` in config.js, beside this file, set when the page is deployed ("":
// the page's own origin, when the service serves or proxies the page). To point the page at your
// API, edit or replace config.js (`export const apiBase = "http://localhost:8000";`) or mount
// your own over it; scripts/dev.sh and docker-compose.yml do that. Never from the page's URL
// (`?api=`) or anything else an outsider controls: the forms send the email and password there.
const apiBase = String(configuredApiBase ?? "").replace(/\/+$/, "");
document.getElementById("api-base").textContent = apiBase || location.origin;

// The session of the last login. Kept in memory only: hand it to supabase-js with
// `supabase.auth.setSession({ access_token, refresh_token })` (see the README).
export let session = null;

// POSTs JSON; returns { status, body, retryAfter, replayed } or { networkError } when no answer
// could be read (offline, service down, or the browser blocked it: CORS).
async function post(path, body, headers = {}) {
  try {
    const res = await fetch(apiBase + path, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });
    const data = await res.json().catch(() => null);
    return {
      status: res.status,
      body: data,
      retryAfter: res.headers.get("retry-after"),
      replayed: res.headers.get("idempotent-replayed") === "true",
    };
  } catch (err) {
    return { networkError: err };
  }
}

function show(id, kind, text) {
  const el = document.getElementById(id);
  el.dataset.kind = kind;
  el.textContent = text;
}

function seconds(retryAfter) {
  const n = Number(retryAfter);
  return Number.isFinite(n) && n > 0 ? n : 1;
}

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// ---- The profile's fields --------------------------------------------------------------------
// The signup form shows whatever profile fields the service declares (PROFILE_SCHEMA_PATH): they
// are read from the API's OpenAPI document, so the page works for any profile without editing
// this HTML. Every text comes from the document through textContent, never as HTML.
const SIGNUP_OWN_FIELDS = new Set(["email", "password", "role", "captcha_token", "gotrue_meta_security"]);
// What the page shows when the document cannot be read: the default profile, a display name.
const FALLBACK_FIELDS = { properties: { name: { type: "string" } }, required: ["name"] };
let profileFields = []; // [{ name, schema }]

function label(name, schema) {
  if (schema.title) return schema.title;
  const words = name.replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function inputFor(name, schema, required) {
  if (Array.isArray(schema.enum)) {
    const select = document.createElement("select");
    if (!required) select.append(new Option("", ""));
    for (const option of schema.enum) select.append(new Option(String(option), String(option)));
    return select;
  }
  const input = document.createElement("input");
  if (schema.type === "boolean") input.type = "checkbox";
  else if (schema.type === "integer" || schema.type === "number") input.type = "number";
  else if (schema.format === "date") input.type = "date";
  else if (schema.format === "email") input.type = "email";
  else if (schema.format === "uri") input.type = "url";
  if (schema.type === "integer") input.step = "1";
  if (schema.maxLength) input.maxLength = schema.maxLength;
  if (schema.default === true) input.checked = true;
  if (name === "name") input.autocomplete = "name";
  return input;
}

function renderProfileFields(schema) {
  const container = document.getElementById("profile-fields");
  container.replaceChildren();
  const required = new Set(schema.required ?? []);
  profileFields = Object.entries(schema.properties ?? {})
    .filter(([name]) => !SIGNUP_OWN_FIELDS.has(name))
    .map(([name, field]) => ({ name, schema: field }));
  for (const { name, schema: field } of profileFields) {
    const lbl = document.createElement("label");
    const input = inputFor(name, field, required.has(name));
    input.name = name;
    input.required = required.has(name);
    lbl.append(label(name, field) + " ", input);
    const error = document.createElement("p");
    error.className = "field-error";
    error.dataset.for = name;
    container.append(lbl, error);
  }
}

// The form's values as the API takes them: numbers as numbers, checkboxes as booleans, an
// empty optional field left out.
function signupValues() {
  const data = new FormData(signupForm);
  const values = {
    email: data.get("email"),
    password: data.get("password"),
    role: data.get("role"),
  };
  for (const { name, schema } of profileFields) {
    const input = signupForm.elements[name];
    if (schema.type === "boolean") {
      values[name] = input.checked;
      continue;
    }
    const raw = data.get(name) ?? "";
    if (raw === "" && !input.required) continue;
    values[name] = (schema.type === "integer" || schema.type === "number") && raw !== ""
      ? Number(raw) : raw;
  }
  return values;
}

async function loadProfileFields() {
  let schema = FALLBACK_FIELDS;
  let source = "fallback";
  try {
    const res = await fetch(apiBase + "/openapi.json");
    const doc = await res.json();
    const request = doc?.components?.schemas?.SignupRequest;
    if (res.ok && request?.properties) {
      schema = request;
      source = "api";
    }
  } catch {
    // Offline, or the browser blocked it (CORS): the form still works for the default profile.
  }
  renderProfileFields(schema);
  signupForm.dataset.fields = source;
}

// ---- Sign up -------------------------------------------------------------------------------
// One Idempotency-Key per submission. A retry of the same submission (same values, after a
// network error, a 503 or a 409 request_in_progress) reuses it, so the service creates the
// account at most once even if the first attempt did commit.
let pendingSignup = null; // { values, key }

const signupForm = document.getElementById("signup");
loadProfileFields();

function clearFieldErrors() {
  for (const p of signupForm.querySelectorAll(".field-error")) p.textContent = "";
  for (const input of signupForm.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

function showFieldErrors(fields) {
  for (const [name, message] of Object.entries(fields ?? {})) {
    const p = signupForm.querySelector(`.field-error[data-for="${CSS.escape(name)}"]`);
    if (p) p.textContent = message;
    signupForm.elements.namedItem(name)?.setAttribute?.("aria-invalid", "true");
  }
}

signupForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const values = signupValues();
  const same = pendingSignup && JSON.stringify(pendingSignup.values) === JSON.stringify(values);
  const key = same ? pendingSignup.key : newKey();
  pendingSignup = { values, key };
  clearFieldErrors();
  show("signup-status", "busy", "Creating your account…");
  const button = signupForm.querySelector("button");
  button.disabled = true;
  const r = await post("/api/auth/signup", values, { "idempotency-key": key });
  button.disabled = false;

  if (r.networkError) {
    show("signup-status", "error",
      "The request was blocked or the service could not be reached. Submit again to retry (it is safe).");
    return; // keep the key: the same submission may be retried
  }
  const code = r.body?.error?.code;
  if (r.status === 503 || code === "request_in_progress") {
    show("signup-status", "error",
      `The service is busy. Try again in ${seconds(r.retryAfter)} s: submitting again is safe.`);
    return; // keep the key
  }
  pendingSignup = null;
  if (r.status === 201) {
    show("signup-status", "ok", r.body.email_confirmed
      ? `Account created for ${r.body.email}. You can log in now.`
      : `Account created. Check your inbox: we sent a confirmation link to ${r.body.email}.`);
  } else if (r.status === 202) {
    show("signup-status", "ok", "Check your inbox: we sent a confirmation link.");
  } else if (code === "validation_failed" || code === "weak_password") {
    // weak_password (the project's password policy) also lists the other bad fields.
    showFieldErrors(r.body.error.fields);
    show("signup-status", "error", "Please correct the fields marked above.");
  } else if (code === "signup_disabled") {
    show("signup-status", "error", "Signups are closed for now.");
  } else if (code === "captcha_failed") {
    show("signup-status", "error", "Please complete the captcha and try again.");
  } else if (code === "email_taken") {
    show("signup-status", "error", "This email is already registered. Log in instead.");
  } else if (code === "rate_limited") {
    show("signup-status", "error", `Too many attempts. Try again in ${seconds(r.retryAfter)} s.`);
  } else {
    show("signup-status", "error", r.body?.error?.message ?? `Unexpected answer ${r.status}.`);
  }
});

// ---- Log in --------------------------------------------------------------------------------
const loginForm = document.getElementById("login");

loginForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const values = Object.fromEntries(new FormData(loginForm));
  document.getElementById("profile").hidden = true;
  show("login-status", "busy", "Logging in…");
  const r = await post("/api/auth/login", values);
  if (r.networkError) {
    show("login-status", "error", "The request was blocked or the service could not be reached.");
    return;
  }
  const code = r.body?.error?.code;
  if (r.status === 200) {
    session = r.body.session;
    const profile = r.body.profile;
    document.getElementById("profile-name").textContent = profile?.name ?? "(no profile)";
    document.getElementById("profile-role").textContent = profile?.role ?? "";
    document.getElementById("profile-email").textContent = r.body.user.email ?? "";
    document.getElementById("profile").hidden = false;
    show("login-status", "ok", `Logged in as ${profile?.name ?? r.body.user.email}.`);
  } else if (code === "email_not_confirmed") {
    show("login-status", "error", "Confirm your email first: open the link we sent you.");
  } else if (code === "invalid_credentials") {
    show("login-status", "error", "Wrong email or password.");
  } else if (code === "rate_limited") {
    show("login-status", "error", `Too many attempts. Try again in ${seconds(r.retryAfter)} s.`);
  } else {
    show("login-status", "error", r.body?.error?.message ?? `Unexpected answer ${r.status}.`);
  }
});
