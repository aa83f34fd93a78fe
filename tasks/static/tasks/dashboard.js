// The dashboard's own behaviour; htmx (vendored) does the polling.
(function () {
  "use strict";

  function readCookie(name) {
    var match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? match[1] : null;
  }

  // Tell the server the browser's timezone, so it renders times in it.
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    // IANA names are cookie-safe as they are ("Europe/Berlin"); the server
    // only accepts names it knows.
    if (zone && /^[A-Za-z0-9_+\/-]+$/.test(zone) && readCookie("tz") !== zone) {
      var secure = location.protocol === "https:" ? "; Secure" : "";
      document.cookie = "tz=" + zone + "; path=/; max-age=31536000; SameSite=Lax" + secure;
    }
  } catch (e) {
    /* no Intl: times stay in UTC */
  }

  // Same rules as tasks/templatetags/dashboard.py:relative.
  function relative(moment) {
    var seconds = (moment.getTime() - Date.now()) / 1000;
    var size = Math.abs(seconds);
    var amount;
    if (size < 45) {
      if (size < 5) return "now";
      return seconds > 0 ? "in a few seconds" : "seconds ago";
    }
    if (size < 90 * 60) amount = Math.round(size / 60) + " min";
    else if (size < 36 * 3600) amount = Math.round(size / 3600) + " h";
    else amount = Math.round(size / 86400) + " d";
    return seconds > 0 ? "in " + amount : amount + " ago";
  }

  function refreshTimes() {
    document.querySelectorAll("time[datetime]").forEach(function (el) {
      var label = el.querySelector("[data-rel]");
      var moment = new Date(el.getAttribute("datetime"));
      if (label && !isNaN(moment)) label.textContent = relative(moment);
    });
  }
  setInterval(refreshTimes, 15000);

  function confirmationOpen() {
    try {
      return document.querySelector(":popover-open") !== null;
    } catch (e) {
      return false;
    }
  }

  // Polls wait while the tab is hidden or a confirmation is open (a swap
  // would close it under the operator's finger).
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (document.hidden || confirmationOpen()) event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      button.textContent = "Copied";
    });
  });
})();
