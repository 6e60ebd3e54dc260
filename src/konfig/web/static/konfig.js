// Konfig's UI script: progressive enhancement only; every page works without it.
// Loaded from /ui/static (no inline script), so a strict Content-Security-Policy applies.
"use strict";

(function () {
  // ---- Type-aware editor: show the chosen type's fields, keep the select list in sync. ----

  function setupEditor(form) {
    const typeSelect = form.querySelector("[data-type-select]");
    const groups = form.querySelectorAll("fieldset[data-type]");
    function showType() {
      groups.forEach(function (group) {
        const active = group.dataset.type === typeSelect.value;
        group.hidden = !active;
        group.disabled = !active;
      });
    }
    if (typeSelect) {
      typeSelect.addEventListener("change", showType);
      showType();
    }

    form.querySelectorAll("[data-options-for]").forEach(function (box) {
      const target = document.getElementById(box.dataset.optionsFor);
      if (target) {
        box.addEventListener("input", function () { syncOptions(box, target); });
        // Text typed before this script ran (a slow load) still becomes options.
        if (box.value.trim()) syncOptions(box, target);
      }
    });

    form.querySelectorAll("[data-json-editor]").forEach(function (area) {
      let timer = null;
      area.addEventListener("input", function () {
        clearTimeout(timer);
        timer = setTimeout(function () { checkJson(area); }, 250);
      });
      area.addEventListener("blur", function () { checkJson(area); });
    });

    form.addEventListener("submit", function (event) {
      let firstBad = null;
      form.querySelectorAll("[data-json-editor]").forEach(function (area) {
        if (area.closest("fieldset[disabled]")) return;
        const problem = checkJson(area);
        if (problem && !firstBad) firstBad = { area: area, problem: problem };
      });
      if (firstBad) {
        event.preventDefault();
        firstBad.area.focus();
        firstBad.area.setSelectionRange(firstBad.problem.pos, firstBad.problem.pos);
      }
    });
  }

  function parseOption(line) {
    try {
      const value = JSON.parse(line);
      if (["string", "number", "boolean"].indexOf(typeof value) >= 0) return value;
    } catch (e) { /* plain text */ }
    return line;
  }

  function syncOptions(box, select) {
    const chosen = select.value;
    const lines = box.value.split("\n").map(function (l) { return l.trim(); }).filter(Boolean);
    while (select.options.length > 1) select.remove(1);
    lines.forEach(function (line) {
      const value = parseOption(line);
      const option = document.createElement("option");
      option.value = JSON.stringify(value);
      option.textContent = typeof value === "string" ? value : JSON.stringify(value);
      option.selected = option.value === chosen;
      select.appendChild(option);
    });
  }

  // ---- JSON editor: say where the syntax error is (line and column), before sending. ----

  function locateJsonError(text) {
    let i = 0;
    function fail(message) { throw { pos: i, message: message }; }
    function describe(ch) {
      return ch === undefined ? "end of input" : "character " + JSON.stringify(ch);
    }
    function ws() { while (i < text.length && " \t\n\r".indexOf(text[i]) >= 0) i++; }
    function string() {
      i++;
      while (i < text.length) {
        const ch = text[i];
        if (ch === '"') { i++; return; }
        if (ch === "\\") {
          const next = text[i + 1];
          if (next === "u") {
            if (!/^[0-9a-fA-F]{4}$/.test(text.substr(i + 2, 4))) fail("invalid \\u escape");
            i += 6;
            continue;
          }
          if ('"\\/bfnrt'.indexOf(next) < 0 || next === undefined) fail("invalid escape in a string");
          i += 2;
          continue;
        }
        if (ch < " ") fail("line break or control character inside a string (use \\n)");
        i++;
      }
      fail("a string is not closed: add the closing double quote");
    }
    function number() {
      const match = /-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
      match.lastIndex = i;
      const found = match.exec(text);
      if (!found || found[0] === "-") fail("invalid number");
      i = match.lastIndex;
    }
    function array() {
      i++; ws();
      if (text[i] === "]") { i++; return; }
      for (;;) {
        value(); ws();
        if (text[i] === ",") { i++; continue; }
        if (text[i] === "]") { i++; return; }
        fail("expected ',' or ']' after a list item, found " + describe(text[i]));
      }
    }
    function object() {
      i++; ws();
      if (text[i] === "}") { i++; return; }
      for (;;) {
        ws();
        if (text[i] !== '"') fail("expected a property name in double quotes, found " + describe(text[i]));
        string(); ws();
        if (text[i] !== ":") fail("expected ':' after the property name, found " + describe(text[i]));
        i++;
        value(); ws();
        if (text[i] === ",") { i++; continue; }
        if (text[i] === "}") { i++; return; }
        fail("expected ',' or '}' after a property value, found " + describe(text[i]));
      }
    }
    function value() {
      ws();
      const ch = text[i];
      if (ch === "{") return object();
      if (ch === "[") return array();
      if (ch === '"') return string();
      if (ch === "-" || (ch >= "0" && ch <= "9")) return number();
      const words = ["true", "false", "null"];
      for (let w = 0; w < words.length; w++) {
        if (text.startsWith(words[w], i)) { i += words[w].length; return; }
      }
      fail(ch === undefined ? "the JSON ends too early" : "unexpected " + describe(ch));
    }
    try {
      value(); ws();
      if (i < text.length) fail("unexpected text after the JSON value: " + describe(text[i]));
    } catch (problem) {
      if (problem && typeof problem.pos === "number") return problem;
      throw problem;
    }
    return null;
  }

  function lineAndColumn(text, pos) {
    const before = text.slice(0, pos).split("\n");
    return { line: before.length, column: before[before.length - 1].length + 1 };
  }

  function checkJson(area) {
    const holder = document.getElementById(area.id + "-syntax");
    const text = area.value;
    let problem = null;
    if (text.trim() !== "") {
      try {
        JSON.parse(text);
      } catch (e) {
        problem = locateJsonError(text) || { pos: text.length, message: e.message };
      }
    }
    if (holder) {
      if (problem) {
        const where = lineAndColumn(text, problem.pos);
        holder.textContent = "Line " + where.line + ", column " + where.column + ": " + problem.message + ".";
        holder.hidden = false;
        area.setAttribute("aria-invalid", "true");
        area.setAttribute("aria-errormessage", holder.id);
      } else {
        holder.textContent = "";
        holder.hidden = true;
        if (!area.parentNode.querySelector(".field-error:not(.js-json-error)")) {
          area.removeAttribute("aria-invalid");
        }
        area.removeAttribute("aria-errormessage");
      }
    }
    return problem;
  }

  // ---- Confirmations for destructive forms (data-confirm). ----

  function setupConfirm(root) {
    root.querySelectorAll("form[data-confirm]").forEach(function (form) {
      if (form.dataset.confirmReady) return;
      form.dataset.confirmReady = "1";
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
  }

  // ---- Live updates: server-sent events, then the entries table is fetched again. ----

  function announce(text) {
    const status = document.getElementById("live-status");
    if (status) status.textContent = text;
  }

  function setRevision(revision) {
    document.querySelectorAll("[data-revision-label]").forEach(function (label) {
      label.textContent = String(revision);
    });
  }

  function listen(url, since, onRevision) {
    const source = new EventSource(url + "?since=" + encodeURIComponent(since));
    source.addEventListener("revision", function (event) {
      const revision = parseInt(event.data, 10);
      if (!isNaN(revision)) onRevision(revision);
    });
    return source;
  }

  function setupLiveTable(holder) {
    let current = parseInt(holder.dataset.revision, 10) || 0;
    let loading = false;
    let wanted = current;
    function reload() {
      if (loading || wanted <= current) return;
      loading = true;
      const target = wanted;
      fetch(holder.dataset.fragmentUrl, {
        headers: { "X-Konfig-Fragment": "1" },
        credentials: "same-origin",
      }).then(function (response) {
        if (response.status === 401) { window.location.reload(); return null; }
        if (!response.ok) throw new Error("HTTP " + response.status);
        const shown = parseInt(response.headers.get("X-Konfig-Revision"), 10) || target;
        return response.text().then(function (html) {
          holder.innerHTML = html;
          setupConfirm(holder);
          current = Math.max(current, shown);
          holder.dataset.revision = String(current);
          setRevision(current);
          announce("Updated just now: revision " + current + ".");
        });
      }).catch(function () {
        announce("Could not load the latest entries. Reload the page to see them.");
      }).then(function () {
        loading = false;
        reload();
      });
    }
    listen(holder.dataset.eventsUrl, current, function (revision) {
      wanted = Math.max(wanted, revision);
      reload();
    });
  }

  function setupWatch(status) {
    const since = parseInt(status.dataset.revision, 10) || 0;
    listen(status.dataset.eventsUrl, since, function (revision) {
      if (revision > since) {
        status.textContent = status.dataset.watchMessage.replace("{revision}", String(revision));
      }
    });
  }

  // ---- Dashboard: filter the tree as you type (the form still searches on the server). ----

  function setupTreeFilter(input) {
    const tree = document.getElementById(input.dataset.filterTree);
    if (!tree) return;
    input.addEventListener("input", function () {
      const query = input.value.trim().toLowerCase();
      const nodes = Array.prototype.slice.call(tree.querySelectorAll(".tree-node")).reverse();
      nodes.forEach(function (node) {
        const own = node.dataset.path.toLowerCase().indexOf(query) >= 0;
        const child = node.querySelector(":scope > ul > .tree-node:not([hidden])");
        node.hidden = query !== "" && !own && !child;
      });
    });
  }

  // ---- A new token: a copy button (the clipboard API, or selecting the text as a fallback). ----

  function setupCopy(button) {
    const field = document.getElementById(button.dataset.copy);
    const status = document.getElementById("copy-status");
    if (!field) return;
    function say(text) { if (status) status.textContent = text; }
    function selectField() {
      field.focus();
      field.select();
      field.setSelectionRange(0, field.value.length);
    }
    button.hidden = false;
    say("Press Copy, or select the text and copy it.");
    button.addEventListener("click", function () {
      function fallback() {
        selectField();
        let copied = false;
        try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
        say(copied ? "Copied to the clipboard." : "Selected: press Ctrl+C (or ⌘C) to copy it.");
      }
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(function () {
          say("Copied to the clipboard.");
          button.textContent = "Copied";
        }, fallback);
      } else {
        fallback();
      }
    });
  }

  // ---- A flag's rollout: the slider moves the first of two weights, the second follows. ----

  function setupRollout(form) {
    const slider = form.querySelector("[data-rollout-slider]");
    const weights = form.querySelectorAll("[data-weight]");
    const label = form.querySelector("[data-rollout-label]");
    if (!slider || weights.length !== 2) return;
    slider.addEventListener("input", function () {
      weights[0].value = slider.value;
      weights[1].value = String(100 - Number(slider.value));
      if (label) label.textContent = slider.value;
    });
  }

  function setupSelectAll(field) {
    field.addEventListener("focus", function () { field.select(); });
  }

  // ---- Token scopes: pick a namespace (a datalist of the tenant's names), add it as a line. ----

  function setupScopePicker(picker) {
    const scopes = document.getElementById(picker.dataset.scopePicker);
    const name = picker.querySelector("input[list]");
    const permissions = picker.querySelector("select");
    const add = picker.querySelector("[data-scope-add]");
    if (!scopes || !name || !permissions || !add) return;
    add.hidden = false;
    add.addEventListener("click", function () {
      const pattern = name.value.trim();
      if (!pattern) { name.focus(); return; }
      const line = pattern + " " + permissions.value;
      scopes.value = scopes.value.trim() ? scopes.value.replace(/\s*$/, "") + "\n" + line : line;
      name.value = "";
      name.focus();
    });
  }

  // ---- A session that ended while editing: back to the page, the input filled in again. ----
  // A form marked data-resume is kept, on submit, in this tab's sessionStorage with the page it
  // was on: never its form token, a password, or the value of a secret. Should its session have
  // ended, the server answers with the sign-in form (data-resume-after), which then leads back
  // to that page, where the fields are filled in again. Any other page drops what was kept.

  const STASH = "konfig.resume";
  const STASH_MAX_AGE = 60 * 60 * 1000;

  function readStash() {
    try { return JSON.parse(window.sessionStorage.getItem(STASH) || "null"); } catch (e) { return null; }
  }
  function writeStash(stash) {
    try { window.sessionStorage.setItem(STASH, JSON.stringify(stash)); } catch (e) { /* full or off */ }
  }
  function dropStash() {
    try { window.sessionStorage.removeItem(STASH); } catch (e) { /* storage off */ }
  }

  function keptFields(form) {
    // A secret entry's value is never written to the browser's storage.
    const secret = form.querySelector("input[name=is_secret]:checked");
    const fields = [];
    Array.prototype.forEach.call(form.elements, function (field) {
      const type = (field.type || "").toLowerCase();
      if (!field.name || field.disabled || field.name === "csrf_token") return;
      if (type === "password" || type === "file" || type === "submit" || type === "button") return;
      if (field.hasAttribute("data-secret") || (secret && field.name.indexOf("value") === 0)) return;
      if (type === "checkbox" || type === "radio") {
        fields.push([field.name, field.value, field.checked]);
      } else {
        fields.push([field.name, field.value]);
      }
    });
    return fields;
  }

  function fillIn(form, fields) {
    fields.forEach(function (kept) {
      const named = form.querySelectorAll("[name='" + kept[0].replace(/'/g, "") + "']");
      named.forEach(function (field) {
        if (field.name === "csrf_token") return;
        const type = (field.type || "").toLowerCase();
        if (type === "checkbox" || type === "radio") {
          if (field.value === kept[1]) field.checked = kept[2];
        } else if (type !== "password" && type !== "file") {
          field.value = kept[1];
        }
        field.dispatchEvent(new Event("input", { bubbles: true }));
        field.dispatchEvent(new Event("change", { bubbles: true }));
      });
    });
    const note = form.querySelector("[data-resumed]");
    if (note) note.hidden = false;
  }

  function setupResume() {
    document.querySelectorAll("form[data-resume]").forEach(function (form) {
      form.addEventListener("submit", function () {
        writeStash({
          page: window.location.pathname + window.location.search,
          action: form.getAttribute("action"),
          fields: keptFields(form),
          at: Date.now(),
          armed: false,
        });
      });
    });
    const stash = readStash();
    if (!stash || Date.now() - stash.at > STASH_MAX_AGE) { dropStash(); return; }
    const login = document.querySelector("form[data-login]");
    if (login) {  // kept while signing in (a wrong password shows this form again)
      if (login.dataset.resumeAfter !== "yes" && !stash.armed) { dropStash(); return; }
      const next = login.querySelector("input[name=next]");
      if (next) next.value = stash.page;  // the server still only follows a page of the UI
      const note = login.querySelector("[data-resume-note]");
      if (note) note.hidden = false;
      stash.armed = true;
      writeStash(stash);
      return;
    }
    dropStash();
    if (!stash.armed || stash.page !== window.location.pathname + window.location.search) return;
    document.querySelectorAll("form[data-resume]").forEach(function (form) {
      if (form.getAttribute("action") === stash.action) fillIn(form, stash.fields);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-scope-picker]").forEach(setupScopePicker);
    document.querySelectorAll("form[data-editor]").forEach(setupEditor);
    setupConfirm(document);
    document.querySelectorAll("[data-live]").forEach(setupLiveTable);
    document.querySelectorAll("[data-live-watch]").forEach(setupWatch);
    document.querySelectorAll("[data-filter-tree]").forEach(setupTreeFilter);
    document.querySelectorAll("[data-copy]").forEach(setupCopy);
    document.querySelectorAll("[data-select-all]").forEach(setupSelectAll);
    document.querySelectorAll("form[data-rollout]").forEach(setupRollout);
    setupResume();
  });
})();
