// One file's trip through the resumable upload API (repository/api/uploads.py), for the draft page's widget
// (upload.js). The same steps as the command-line client (nbarchive_client/transfer.py):
//   1. the file is read once: its SHA-256 (sha256.js, incrementally) and each part's (crypto.subtle.digest);
//   2. the upload begins (path, size, sha256, part size); its id and the hashes are kept in localStorage, keyed
//      by record, path, size and modification time, so that a reloaded page or a new visit can go on;
//   3. the parts the store does not hold are signed (by their SHA-256) and PUT, several at once, to the URLs the
//      server answers (S3: presigned, straight to the object store; local storage: the application's part URL
//      with Content-Range); then the upload is completed and the server's check awaited.
// Pausing aborts the parts in flight; resuming asks the server which parts it holds and sends only the others.
(function (root) {
  "use strict";

  var MIB = 1024 * 1024;
  var MAX_PARTS = 10000;
  var SIGN_BATCH = 64;
  var RETRY_SECONDS = [1, 2, 4, 8, 15];  // a dropped connection: try a part again this long after, then pause
  var STORE_PREFIX = "nbarchive.upload:";
  // The browser sets these itself and refuses to be told.
  var FORBIDDEN_HEADERS = ["content-length", "host", "connection"];

  function Paused() { this.paused = true; }

  function UploadError(lines, retryable) {
    this.lines = lines;
    this.retryable = !!retryable;  // the network, not the file: resuming later may work
  }

  // The API's words for a path it refuses (repository/validators.py validate_file_path), checked here before any
  // byte is read; tests/e2e/test_resumable_upload.py compares them with the API's answer.
  function pathProblem(path) {
    if (!path) return "The file path is empty.";
    if (path.indexOf("\\") !== -1) return "Use '/' to separate folders in the file path, not '\\'.";
    if (path.charAt(0) === "/" || /^[A-Za-z]:/.test(path)) return "The file path must be relative (no leading '/').";
    var bad = path.split("/").some(function (segment) {
      return segment === "" || segment === "." || segment === "..";
    });
    return bad ? "The file path may not contain empty, '.' or '..' parts." : null;
  }

  function partSizeFor(size, preferred) {
    var smallest = Math.ceil(size / MAX_PARTS);
    return Math.max(preferred, Math.ceil(smallest / MIB) * MIB);
  }

  // "detail" and the field messages of a problem+json answer; else the HTTP status.
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
      var code = /<Code>([^<]*)<\/Code>/.exec(xhr.responseText || "");  // S3's XML error
      if (code) lines.push("The object store refused the part: " + code[1] + ".");
    }
    if (!lines.length) lines.push("The server answered " + xhr.status + " " + (xhr.statusText || "") + ".");
    return lines;
  }

  // At most `slots` parts in flight across all files: parallel parts fill the connection, too many only compete.
  function Limiter(slots) {
    this.free = slots;
    this.waiting = [];
  }
  Limiter.prototype.acquire = function () {
    var self = this;
    if (self.free > 0) { self.free -= 1; return Promise.resolve(); }
    return new Promise(function (resolve) { self.waiting.push(resolve); });
  };
  Limiter.prototype.release = function () {
    var next = this.waiting.shift();
    if (next) next(); else this.free += 1;
  };

  var resumeStore = {
    key: function (recordId, path, file) {
      return STORE_PREFIX + JSON.stringify([recordId, path, file.size, file.lastModified]);
    },
    load: function (key) {
      try { return JSON.parse(root.localStorage.getItem(key)); } catch (ignored) { return null; }
    },
    save: function (key, state) { root.localStorage.setItem(key, JSON.stringify(state)); },
    forget: function (key) { root.localStorage.removeItem(key); },
    // The unfinished uploads of a record: [{key, path, size}], for the page to offer resuming them.
    unfinished: function (recordId) {
      var found = [];
      for (var i = 0; i < root.localStorage.length; i++) {
        var key = root.localStorage.key(i);
        if (key.indexOf(STORE_PREFIX) !== 0) continue;
        try {
          var parts = JSON.parse(key.slice(STORE_PREFIX.length));
          if (parts[0] === recordId) found.push({ key: key, path: parts[1], size: parts[2] });
        } catch (ignored) { /* not one of ours */ }
      }
      return found;
    },
  };

  function base64(buffer) {
    return root.btoa(String.fromCharCode.apply(null, new Uint8Array(buffer)));
  }

  // options: uploadsUrl, recordId, partSize, limiter, csrfToken(), onProgress(sentBytes), onPhase(text)
  function Transfer(file, path, options) {
    this.file = file;
    this.path = path;
    this.options = options;
    this.key = resumeStore.key(options.recordId, path, file);
    this.inFlight = [];
    this.paused = false;
  }

  Transfer.prototype.request = function (method, url, body) {
    var self = this;
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open(method, url);
      xhr.setRequestHeader("X-CSRFToken", self.options.csrfToken());
      xhr.setRequestHeader("Accept", "application/json");
      if (body !== undefined) xhr.setRequestHeader("Content-Type", "application/json");
      xhr.onload = function () {
        if (xhr.status >= 200 && xhr.status < 300) {
          resolve(xhr.status === 204 ? null : JSON.parse(xhr.responseText));
        } else {
          var error = new UploadError(problemMessages(xhr), xhr.status === 503);
          error.status = xhr.status;
          reject(error);
        }
      };
      xhr.onerror = function () {
        reject(new UploadError(["The connection to the server dropped."], true));
      };
      xhr.send(body === undefined ? null : JSON.stringify(body));
    });
  };

  Transfer.prototype.uploadUrl = function (state) {
    return this.options.uploadsUrl + "/" + state.uploadId;
  };

  // The file's SHA-256 and every part's, reading it once, a part at a time.
  Transfer.prototype.hash = function (partSize) {
    var self = this, whole = new root.NbarchiveSha256(), parts = [], offset = 0, size = self.file.size;
    function step() {
      if (self.paused) return Promise.reject(new Paused());
      if (offset >= size) return Promise.resolve({ sha256: whole.hexdigest(), parts: parts });
      var end = Math.min(offset + partSize, size);
      return self.file.slice(offset, end).arrayBuffer().then(function (buffer) {
        whole.update(new Uint8Array(buffer));
        return root.crypto.subtle.digest("SHA-256", buffer);
      }).then(function (digest) {
        parts.push(base64(digest));
        offset = end;
        self.options.onPhase("Reading the file to compute its checksums… " + Math.floor(100 * offset / size) + "%");
        return step();
      });
    }
    return step();
  };

  // The upload this page (or an earlier visit) began for this file, if the server still has it.
  Transfer.prototype.resumable = function () {
    var self = this, state = resumeStore.load(self.key);
    if (!state) return Promise.resolve(null);
    return self.request("GET", self.uploadUrl(state)).then(function (upload) {
      if (upload.state === "failed") {
        resumeStore.forget(self.key);
        throw new UploadError([upload.message || "The upload failed."]);
      }
      return { state: state, upload: upload };
    }, function (error) {
      if (error.status !== 404) throw error;
      resumeStore.forget(self.key);  // expired, aborted or its draft gone: begin again
      return null;
    });
  };

  Transfer.prototype.begin = function () {
    var self = this, partSize = partSizeFor(self.file.size, self.options.partSize);
    return self.hash(partSize).then(function (hashes) {
      self.options.onPhase("Starting…");
      return self.request("POST", self.options.uploadsUrl, {
        path: self.path, size: self.file.size, sha256: hashes.sha256, part_size: partSize,
      }).then(function (upload) {
        var state = { uploadId: upload.id, partSize: upload.part_size, sha256: hashes.sha256, parts: hashes.parts };
        resumeStore.save(self.key, state);
        return { state: state, upload: upload };
      });
    });
  };

  // Resolves with the upload once the server has checked it (state "ready"); rejects with UploadError or Paused.
  Transfer.prototype.run = function () {
    var self = this;
    self.paused = false;
    return self.resumable().then(function (found) {
      return found || self.begin();
    }).then(function (found) {
      var upload = found.upload;
      if (upload.state !== "uploading") return self.awaitCheck(found.state, upload);
      return self.sendMissing(found.state, upload).then(function () {
        self.options.onPhase("Completing…");
        return self.request("POST", self.uploadUrl(found.state) + "/complete");
      }).then(function (completed) { return self.awaitCheck(found.state, completed); });
    });
  };

  Transfer.prototype.pause = function () {
    this.paused = true;
    this.inFlight.slice().forEach(function (xhr) { xhr.abort(); });
  };

  // Drop the upload on the server (its parts are deleted) and here.
  Transfer.prototype.discard = function () {
    var self = this, state = resumeStore.load(self.key);
    self.pause();
    resumeStore.forget(self.key);
    return state ? self.request("DELETE", self.uploadUrl(state)).catch(function () { return null; }) : Promise.resolve();
  };

  Transfer.prototype.partLength = function (state, number) {
    return Math.min(state.partSize, this.file.size - (number - 1) * state.partSize);
  };

  Transfer.prototype.sendMissing = function (state, upload) {
    var self = this, signed = {}, loaded = {}, held = 0;
    var missing = [];
    var received = {};
    (upload.parts_received || []).forEach(function (part) { received[part.number] = part; });
    for (var number = 1; number <= state.parts.length; number++) {
      var part = received[number];
      var whole = part && part.size === self.partLength(state, number) &&
        (part.sha256 === null || part.sha256 === state.parts[number - 1]);
      if (whole) held += part.size; else missing.push(number);
    }
    function report() {
      var sent = held;
      Object.keys(loaded).forEach(function (n) { sent += loaded[n]; });
      self.options.onProgress(sent);
    }
    report();
    function sign(number) {
      if (signed[number]) return Promise.resolve(signed[number]);
      var at = missing.indexOf(number);
      var batch = missing.slice(at, at + SIGN_BATCH).filter(function (n) { return !signed[n]; });
      return self.request("POST", self.uploadUrl(state) + "/parts", {
        parts: batch.map(function (n) { return { number: n, sha256: state.parts[n - 1] }; }),
      }).then(function (targets) {
        targets.forEach(function (target) { signed[target.number] = target; });
        return signed[number];
      });
    }
    var queue = missing.slice();
    var signing = Promise.resolve();
    function worker() {
      if (self.paused) return Promise.reject(new Paused());
      var number = queue.shift();
      if (number === undefined) return Promise.resolve();
      // Signing one batch at a time: workers must not ask for the same batch twice.
      signing = signing.then(function () { return sign(number); });
      return signing.then(function () {
        return self.options.limiter.acquire();
      }).then(function () {
        return self.sendPart(state, signed, number, 0, function (bytes) { loaded[number] = bytes; report(); })
          .then(function (result) { self.options.limiter.release(); return result; },
            function (error) { self.options.limiter.release(); throw error; });
      }).then(function () {
        if (self.paused) throw new Paused();  // parts not yet sent stay for the resume
        return worker();
      });
    }
    var workers = [];
    for (var i = 0; i < Math.min(self.options.partConcurrency, missing.length); i++) workers.push(worker());
    return Promise.all(workers);
  };

  Transfer.prototype.sendPart = function (state, signed, number, attempt, onLoaded) {
    var self = this;
    return new Promise(function (resolve, reject) {
      var target = signed[number];
      var offset = (number - 1) * state.partSize;
      var xhr = new XMLHttpRequest();
      self.inFlight.push(xhr);
      function settle() { self.inFlight.splice(self.inFlight.indexOf(xhr), 1); }
      xhr.open(target.method || "PUT", target.url);
      Object.keys(target.headers || {}).forEach(function (name) {
        if (FORBIDDEN_HEADERS.indexOf(name.toLowerCase()) === -1) xhr.setRequestHeader(name, target.headers[name]);
      });
      xhr.upload.onprogress = function (event) { onLoaded(event.loaded); };
      xhr.onload = function () {
        settle();
        if (xhr.status >= 200 && xhr.status < 300) {
          onLoaded(self.partLength(state, number));
          resolve();
        } else if (xhr.status >= 500 && attempt < RETRY_SECONDS.length) {
          onLoaded(0);
          resolve(self.later(attempt, function () { return self.sendPart(state, signed, number, attempt + 1, onLoaded); }));
        } else if ((xhr.status === 400 || xhr.status === 403) && /xpired/.test(xhr.responseText) && attempt < 2) {
          delete signed[number];  // the URL expired while the part waited its turn: sign it again
          onLoaded(0);
          resolve(self.request("POST", self.uploadUrl(state) + "/parts", {
            parts: [{ number: number, sha256: state.parts[number - 1] }],
          }).then(function (targets) {
            signed[number] = targets[0];
            return self.sendPart(state, signed, number, attempt + 1, onLoaded);
          }));
        } else {
          reject(new UploadError(["Part " + number + " was refused."].concat(problemMessages(xhr))));
        }
      };
      xhr.onerror = function () {
        settle();
        onLoaded(0);
        if (attempt < RETRY_SECONDS.length) {
          self.options.onPhase("The connection dropped; trying again…");
          resolve(self.later(attempt, function () { return self.sendPart(state, signed, number, attempt + 1, onLoaded); }));
        } else {
          reject(new UploadError(["The connection dropped. The parts already sent are kept: resume when the " +
            "network is back."], true));
        }
      };
      xhr.onabort = function () { settle(); onLoaded(0); reject(new Paused()); };
      xhr.send(self.file.slice(offset, offset + self.partLength(state, number)));
    });
  };

  Transfer.prototype.later = function (attempt, again) {
    var self = this;
    return new Promise(function (resolve) { root.setTimeout(resolve, RETRY_SECONDS[attempt] * 1000); })
      .then(function () { if (self.paused) throw new Paused(); return again(); });
  };

  Transfer.prototype.awaitCheck = function (state, upload) {
    var self = this;
    if (upload.state === "checking") {
      self.options.onPhase("Received; the server is checking the file…");
      return new Promise(function (resolve) { root.setTimeout(resolve, 500); }).then(function () {
        return self.request("GET", self.uploadUrl(state));
      }).then(function (fresh) { return self.awaitCheck(state, fresh); }, function (error) {
        // Once checked and added, the upload is a file and no longer listed: 404 means "ready".
        if (error.status !== 404) throw error;
        resumeStore.forget(self.key);
        return { state: "ready" };
      });
    }
    resumeStore.forget(self.key);
    if (upload.state === "failed") throw new UploadError([upload.message || "The server's check failed."]);
    return upload;
  };

  root.NbarchiveTransfer = {
    Transfer: Transfer, Limiter: Limiter, Paused: Paused, UploadError: UploadError, resumeStore: resumeStore,
    pathProblem: pathProblem,
  };
})(window);
