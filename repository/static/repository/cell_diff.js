// The moderators' notebook diff on a review request page: a worker prepares it (moderation/tasks.py), and until
// then the page says so. Poll the cells part of the page (202 while it is being prepared) and swap it in once it
// is ready, so a comment being typed is not lost to a reload. A static file because the pages' CSP allows no
// inline script; without it the page's "Reload" link does the same.
(function () {
  "use strict";
  var box = document.getElementById("cell-diff");
  if (!box || !box.dataset.pollUrl) return;
  var url = box.dataset.pollUrl;
  var delay = 1500, waited = 0;

  function poll() {
    fetch(url, {credentials: "same-origin", headers: {Accept: "text/html"}})
      .then(function (response) {
        if (response.status === 200) {
          return response.text().then(function (html) { box.outerHTML = html; });
        }
        waited += delay;
        delay = Math.min(delay * 1.5, 10000);
        if (waited < 10 * 60 * 1000) window.setTimeout(poll, delay);  // then the Reload link is left to the reader
      })
      .catch(function () { window.setTimeout(poll, 10000); });
  }
  window.setTimeout(poll, delay);
})();
