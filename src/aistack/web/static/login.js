// The log-in form returns to the page asked for: a dashboard page is a "#/jobs/abc" fragment,
// which the browser keeps across the server's redirect to /login but never sends to the
// server, so it is added to the form's "next" here (the server checks it is a path of its own).
"use strict";
(() => {
  const next = document.getElementById("next");
  const hash = location.hash;
  if (next && /^#\/[^\s]*$/.test(hash) && !next.value.includes("#")) next.value = (next.value || "/") + hash;
})();
