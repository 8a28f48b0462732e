// The example page's API for the compose stack: the `app` service, published on localhost:8000.
// docker-compose.yml mounts this file over examples/web/config.js in the `web` service; point it
// elsewhere by editing it (or mounting your own). See examples/web/config.js.
export const apiBase = "http://localhost:8000";
