// The review queue: keyboard shortcuts, and htmx swaps of the answers that carry a message.
// Everything here is an enhancement; every action is also a plain link or form.
(function () {
  "use strict";

  // htmx leaves 4xx answers unswapped by default. Ours re-render the item with what went
  // wrong: 422 a form error, 409 someone decided first, 403 not yours to decide.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if (status === 403 || status === 409 || status === 422) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  var currentId = null;

  function items() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-queue-item]"));
  }

  // The selected item, only while it is on the page and shown as selected: an item replaced by
  // another (a group by its confirmation) takes the selection with it.
  function current() {
    var el = currentId && document.getElementById(currentId);
    return el && el.hasAttribute("data-queue-item") && el.classList.contains("current") ? el : null;
  }

  function select(el) {
    items().forEach(function (i) { i.classList.remove("current"); });
    if (!el) { currentId = null; return; }
    el.classList.add("current");
    currentId = el.id;
    el.focus({ preventScroll: true });
    el.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    var list = items();
    if (!list.length) return;
    var index = list.indexOf(current());
    select(list[index < 0 ? 0 : Math.min(Math.max(index + step, 0), list.length - 1)]);
  }

  // A shortcut acts on the item visibly selected, and on nothing when none is (never on the first).
  function act(names) {
    var el = current();
    if (!el) return;
    for (var i = 0; i < names.length; i++) {
      var target = el.querySelector('[data-action="' + names[i] + '"]');
      if (!target) continue;
      if (target.tagName === "INPUT") target.focus(); else target.click();
      return;
    }
  }

  // Deciding keys wait a moment before they act: a key that follows within BURST_MS means the
  // person is typing text into a page with no field focused, and then no key decides anything
  // until they stop (typing "reject all" selects nothing and approves nothing).
  var BURST_MS = 250;
  var QUIET_MS = 1000;
  var lastKeyAt = 0;
  var typingUntil = 0;
  var pending = null;

  function later(fn) {
    pending = window.setTimeout(function () { pending = null; fn(); }, BURST_MS);
  }

  var keys = {
    j: function () { move(1); },
    k: function () { move(-1); },
    a: function () { later(function () { act(["approve"]); }); },
    r: function () { later(function () { act(["reason", "reject"]); }); },
    e: function () { later(function () { act(["edit"]); }); }
  };

  function typing(el) {
    return !!(el && el.closest && el.closest("input, textarea, select, [contenteditable=''], [contenteditable=true]"));
  }

  function burst(now) {
    if (pending) { window.clearTimeout(pending); pending = null; }
    typingUntil = now + QUIET_MS;
    select(null);
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    // Typing in a field is text, never a shortcut.
    if (typing(event.target) || typing(document.activeElement)) {
      if (event.key === "Escape") document.activeElement.blur();
      return;
    }
    var printable = event.key.length === 1 || event.key === "Enter";
    if (!printable) return;
    var now = Date.now();
    if (!event.repeat) {
      var quick = now - lastKeyAt < BURST_MS;
      lastKeyAt = now;
      if (quick || pending) { burst(now); return; }
      if (now < typingUntil) { typingUntil = now + QUIET_MS; return; }
    }
    var handler = keys[event.key];
    if (!handler) return;
    event.preventDefault();
    // Holding a key down moves on; it never decides again and again.
    if (event.repeat && event.key !== "j" && event.key !== "k") return;
    handler();
  });

  // A swapped card is a new element with the same id: it stays the current one. An item replaced
  // by another (a group by its confirmation) leaves nothing selected.
  document.addEventListener("htmx:afterSettle", function () {
    var el = currentId && document.getElementById(currentId);
    if (el && el.hasAttribute("data-queue-item")) el.classList.add("current");
    else currentId = null;
    // A correction form takes the keys: what is typed next goes into its first field.
    var field = el && el.querySelector("form.edit input:not([type=hidden]), form.edit textarea, form.edit select");
    if (field) field.focus();
  });

  document.addEventListener("click", function (event) {
    var el = event.target.closest && event.target.closest("[data-queue-item]");
    if (el && el.id !== currentId) {
      items().forEach(function (i) { i.classList.remove("current"); });
      el.classList.add("current");
      currentId = el.id;
    }
  });
})();
