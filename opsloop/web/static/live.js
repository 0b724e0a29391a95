// Live updates without reloading: every element with data-live="URL" re-fetches that
// fragment every few seconds and swaps it in when it changed. A region someone is typing
// in is left alone, and a signed-out session stops the polling (the next click signs in).
(function () {
  "use strict";
  var PERIOD_MS = 3000;
  function watch(region) {
    var url = region.getAttribute("data-live");
    var last = null;
    var timer = null;
    function busy() {
      var active = document.activeElement;
      return active && active !== document.body && region.contains(active);
    }
    function tick() {
      if (document.hidden || busy()) { return; }
      fetch(url, {credentials: "same-origin", cache: "no-store",
                  headers: {"X-Requested-With": "opsloop-live"}, redirect: "manual"})
        .then(function (response) {
          if (response.status !== 200) { window.clearInterval(timer); return null; }
          return response.text();
        })
        .then(function (html) {
          if (html === null || html === undefined) { return; }
          if (last !== null && html !== last) {
            region.innerHTML = html;
            region.setAttribute("data-updated", String(Date.now()));
          }
          last = html;
        })
        .catch(function () { /* a dropped poll: the next one tries again */ });
    }
    tick();
    timer = window.setInterval(tick, PERIOD_MS);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var regions = document.querySelectorAll("[data-live]");
    for (var i = 0; i < regions.length; i += 1) { watch(regions[i]); }
  });
}());
