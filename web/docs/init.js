// Swagger UI for /api/openapi.json. Only the API's own preset and layout:
// no top bar (it fetches any URL typed in), no online validator badge.
// persistAuthorization stays off, so the token given in "Authorize" lives
// in this page alone and never in localStorage.
'use strict';
window.ui = SwaggerUIBundle({
  url: '/api/openapi.json',
  dom_id: '#swagger-ui',
  presets: [SwaggerUIBundle.presets.apis],
  layout: 'BaseLayout',
  deepLinking: true,
  persistAuthorization: false,
  validatorUrl: null,
  displayRequestDuration: true,
});
