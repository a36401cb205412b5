// Small progressive enhancements used on several pages. Every page works without them.
(function () {
  "use strict";

  // Repeatable form sections: "Add …" copies the empty row Django rendered into a <template>.
  function setUpFormset(container) {
    var prefix = container.getAttribute("data-formset");
    var total = container.querySelector('input[name="' + prefix + '-TOTAL_FORMS"]');
    var template = container.querySelector("template[data-formset-empty]");
    var rows = container.querySelector("[data-formset-rows]");
    var button = container.querySelector("[data-formset-add]");
    if (!total || !template || !rows || !button) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var index = parseInt(total.value, 10);
      var html = template.innerHTML.replace(/__prefix__/g, String(index));
      rows.insertAdjacentHTML("beforeend", html);
      total.value = String(index + 1);
      var legend = rows.lastElementChild && rows.lastElementChild.querySelector("legend");
      if (legend) legend.textContent = legend.textContent.trim() + " " + (index + 1);
      var first = rows.lastElementChild && rows.lastElementChild.querySelector("input, select, textarea");
      if (first) first.focus();
    });
  }

  // Forms with data-confirm ask before a destructive POST (delete a file, revoke a token). Delegated, because
  // the draft page replaces its file list after an upload.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.matches && form.matches("form[data-confirm]") && !window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  // Buttons with data-copy="#id" copy that field's value (the new API token).
  function setUpCopy(button) {
    button.addEventListener("click", function () {
      var field = document.querySelector(button.getAttribute("data-copy"));
      if (!field) return;
      field.select();
      var done = function () { button.textContent = "Copied"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(done, function () { document.execCommand("copy"); done(); });
      } else {
        document.execCommand("copy");
        done();
      }
    });
  }

  document.querySelectorAll("[data-formset]").forEach(setUpFormset);
  document.querySelectorAll("[data-copy]").forEach(setUpCopy);

  // After a refused save the first wrong field may be far below the summary: take the user to it.
  var firstInvalid = document.querySelector('form [aria-invalid="true"]');
  if (firstInvalid) firstInvalid.focus();
})();
