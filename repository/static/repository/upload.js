// The draft page's upload widget. Each file is sent as the raw body of a PUT to the REST API
// (/api/records/<id>/draft/files/<path>), one at a time, with a progress bar per file. The API accepts the
// session cookie with Django's CSRF header. Errors come back as application/problem+json and are shown as the
// server wrote them. After the uploads the file list is re-read from the server, so it shows what was stored.
(function () {
  "use strict";

  var form = document.getElementById("upload");
  if (!form) return;
  var baseUrl = form.getAttribute("data-upload-url");
  var maxFileSize = Number(form.getAttribute("data-max-file-size"));
  var maxNotebookSize = Number(form.getAttribute("data-max-notebook-size"));
  var fileInput = form.querySelector('input[type="file"]');
  var folderInput = form.querySelector('input[name="folder"]');
  var list = form.querySelector("[data-upload-list]");
  var startButton = form.querySelector("[data-upload-start]");
  var busy = false;
  // Parts of the page that an upload can change: the files, what submission still needs, the notebook.
  var REFRESHED_IDS = ["file-list", "submission-status", "metadata-summary", "runs"];

  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    // The cookie may be HttpOnly; the form carries the token too.
    var field = form.querySelector('input[name="csrfmiddlewaretoken"]');
    return field ? field.value : "";
  }

  function formatBytes(bytes) {
    var units = ["bytes", "KB", "MB", "GB", "TB"];
    var value = bytes;
    var unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return unit === 0 ? bytes + " bytes" : value.toFixed(1) + " " + units[unit];
  }

  function targetPath(file) {
    var folder = (folderInput ? folderInput.value : "").trim().replace(/^\/+|\/+$/g, "");
    return folder ? folder + "/" + file.name : file.name;
  }

  // Each path segment is encoded on its own, so "data/a b#1.csv" stays a folder and a file name.
  function fileUrl(path) {
    return baseUrl + "/" + path.split("/").map(encodeURIComponent).join("/");
  }

  function clientSideProblem(file, path) {
    if (file.size === 0) return "The file is empty.";
    var isNotebook = /\.ipynb$/i.test(path);
    var limit = isNotebook ? maxNotebookSize : maxFileSize;
    if (limit && file.size > limit) {
      return "The file is " + formatBytes(file.size) + "; the limit is " + formatBytes(limit) +
        (isNotebook ? " for a notebook." : ".");
    }
    return null;
  }

  // Build "detail" plus any field messages from a problem+json body; fall back to the HTTP status.
  function problemMessages(xhr) {
    var lines = [];
    try {
      var problem = JSON.parse(xhr.responseText);
      if (problem.detail) lines.push(problem.detail);
      (problem.errors || []).forEach(function (error) {
        (error.messages || []).forEach(function (message) {
          if (lines.indexOf(message) === -1) lines.push(message);
        });
      });
    } catch (ignored) {
      // Not JSON: a proxy in front of the application answered.
    }
    if (!lines.length) lines.push("The server answered " + xhr.status + " " + (xhr.statusText || "") + ".");
    return lines;
  }

  function createItem(path, file) {
    var item = document.createElement("li");
    item.className = "upload-item";
    window.setTimeout(function () { item.scrollIntoView({block: "nearest"}); }, 0);  // keep the progress in view
    var head = document.createElement("div");
    head.className = "upload-head";
    var name = document.createElement("span");
    name.className = "upload-path";
    name.textContent = path;
    var size = document.createElement("span");
    size.className = "muted";
    size.textContent = formatBytes(file.size);
    head.appendChild(name);
    head.appendChild(size);
    var progress = document.createElement("progress");
    progress.max = 100;
    progress.value = 0;
    progress.setAttribute("aria-label", "Upload progress of " + path);
    var status = document.createElement("div");
    status.className = "upload-status";
    status.textContent = "Waiting…";
    var cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "button small secondary";
    cancel.textContent = "Cancel";
    cancel.hidden = true;
    item.appendChild(head);
    item.appendChild(progress);
    item.appendChild(status);
    item.appendChild(cancel);
    list.appendChild(item);
    return { item: item, progress: progress, status: status, cancel: cancel };
  }

  function finish(view, ok, lines) {
    view.item.classList.add(ok ? "done" : "failed");
    view.cancel.hidden = true;
    view.progress.hidden = !ok;
    view.status.textContent = lines[0];
    if (lines.length > 1) {
      var details = document.createElement("ul");
      lines.slice(1).forEach(function (line) {
        var entry = document.createElement("li");
        entry.textContent = line;
        details.appendChild(entry);
      });
      view.status.appendChild(details);
    }
  }

  function uploadOne(file, path, view) {
    return new Promise(function (resolve) {
      var problem = clientSideProblem(file, path);
      if (problem) {
        finish(view, false, [problem]);
        resolve(false);
        return;
      }
      var xhr = new XMLHttpRequest();
      xhr.open("PUT", fileUrl(path));
      xhr.setRequestHeader("X-CSRFToken", csrfToken());
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = function (event) {
        if (!event.lengthComputable) return;
        view.progress.value = Math.round((event.loaded / event.total) * 100);
        view.status.textContent = formatBytes(event.loaded) + " of " + formatBytes(event.total);
      };
      xhr.upload.onload = function () {
        view.progress.value = 100;
        view.status.textContent = "Received; the server is checking the file…";
      };
      xhr.onload = function () {
        var ok = xhr.status === 201;
        finish(view, ok, ok ? ["Uploaded."] : problemMessages(xhr));
        resolve(ok);
      };
      xhr.onerror = function () {
        finish(view, false, ["The upload was interrupted: the connection dropped, or the server refused the file " +
          "before it was sent completely."]);
        resolve(false);
      };
      xhr.onabort = function () {
        finish(view, false, ["Cancelled; nothing was stored."]);
        resolve(false);
      };
      view.cancel.hidden = false;
      view.cancel.onclick = function () { xhr.abort(); };
      view.status.textContent = "Starting…";
      xhr.send(file);
    });
  }

  function refreshPage() {
    return fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        REFRESHED_IDS.forEach(function (id) {
          var current = document.getElementById(id);
          var replacement = fresh.getElementById(id);
          if (current && replacement) current.replaceWith(document.importNode(replacement, true));
        });
      })
      .catch(function () { window.location.reload(); });
  }

  function uploadAll(files) {
    busy = true;
    startButton.disabled = true;
    list.innerHTML = "";
    var jobs = files.map(function (file) {
      var path = targetPath(file);
      return { file: file, path: path, view: createItem(path, file) };
    });
    var anyStored = false;
    // One at a time: parallel uploads would only compete for the same connection.
    var chain = jobs.reduce(function (previous, job) {
      return previous.then(function () {
        return uploadOne(job.file, job.path, job.view).then(function (ok) { anyStored = anyStored || ok; });
      });
    }, Promise.resolve());
    return chain.then(function () {
      busy = false;
      startButton.disabled = false;
      fileInput.value = "";
      if (anyStored) return refreshPage();
      return null;
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy) return;
    var files = Array.prototype.slice.call(fileInput.files || []);
    if (!files.length) {
      list.innerHTML = "";
      var hint = document.createElement("li");
      hint.className = "upload-item failed";
      hint.textContent = "Choose one or more files first.";
      list.appendChild(hint);
      fileInput.focus();
      return;
    }
    uploadAll(files);
  });

  window.addEventListener("beforeunload", function (event) {
    if (!busy) return;
    event.preventDefault();
    event.returnValue = "";
  });
})();
