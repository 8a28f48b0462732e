// Where the example page's API is: a deploy-time setting, read by app.js and nothing else.
//
// To point the page at your API, replace (or mount over) this file where the page is served:
//
//   export const apiBase = "http://localhost:8000";
//
// "" (the default) means the page's own origin: the service serves or proxies the page. The API
// must allow the page's origin (CORS_ALLOWED_ORIGINS). The API base is never read from the page's
// URL: a link like `?api=https://attacker.example` would send what the user types (and the
// password the browser fills in) to whoever wrote the link.
export const apiBase = "";
