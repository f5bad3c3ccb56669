// autorthanc-functions: a "Run automation" button on the study and series pages of Orthanc Explorer.
//
// Orthanc Explorer (1.10 and 1.12) loads ../plugins/explorer.js on every page; Orthanc fills it with
// the extensions of its plugins. Lua and the configuration file cannot add to it, so in the compose
// deployment nginx serves this file at /orthanc/plugins/explorer.js (deploy/nginx/default.conf.template).
// The button posts to the function app's manual-run endpoint, which evaluates every rule again for
// that resource (force: new jobs even when nothing changed). The browser asks for the dashboard
// login the first time (nginx protects /api/ and adds the function key).
//
// Old-style jQuery on purpose: Orthanc Explorer ships jQuery 1.x and jQuery Mobile (.live events).
(function () {
  'use strict';

  // The page is <prefix>/orthanc/app/explorer.html; the API is <prefix>/api/.
  var API_ROOT = window.AUTORTHANC_API_ROOT || '../../api';

  function run(level, uuid) {
    $.ajax({
      url: API_ROOT + '/' + level + '/' + encodeURIComponent(uuid) + '/run',
      type: 'POST',
      contentType: 'application/json',
      data: '{}',
      dataType: 'json',
      success: function () {
        alert(
          'Automation queued for this ' +
            (level === 'studies' ? 'study' : 'series') +
            '. Follow it on the dashboard: ' +
            API_ROOT +
            '/dashboard',
        );
      },
      error: function (xhr) {
        var reason =
          xhr.status === 401 || xhr.status === 403
            ? 'not authorised (dashboard login or function key)'
            : 'HTTP ' + xhr.status + ' ' + (xhr.responseText || xhr.statusText || '');
        alert('Could not start the automation: ' + reason);
      },
    });
  }

  function addButton(pageId, deleteButtonId, level) {
    $(pageId).live('pagebeforecreate', function () {
      if ($('#autorthanc-run-' + level).length > 0) return;
      var button = $('<a>')
        .attr('id', 'autorthanc-run-' + level)
        .attr('data-role', 'button')
        .attr('href', '#')
        .attr('data-icon', 'refresh')
        .attr('data-theme', 'e')
        .text('Run automation');
      // Above the list that holds "Delete this study/series", as autorthanc placed its button.
      button.insertBefore($(deleteButtonId).parent().parent());
      button.click(function (event) {
        event.preventDefault();
        if ($.mobile.pageData && $.mobile.pageData.uuid) {
          run(level, $.mobile.pageData.uuid);
        }
      });
    });
  }

  addButton('#study', '#study-delete', 'studies');
  addButton('#series', '#series-delete', 'series');
})();
