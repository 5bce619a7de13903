// Follows a running run's log (server-sent events) and shows its end status.
(function () {
  var log = document.querySelector('[data-testid="run-log"]');
  if (!log || !log.dataset.events || !window.EventSource) return;
  var status = document.querySelector('[data-testid="run-status"]');
  var src = new EventSource(log.dataset.events);
  src.addEventListener('log', function (e) {
    log.appendChild(document.createTextNode(e.data + '\n'));
  });
  src.addEventListener('end', function (e) {
    src.close();
    var end = document.createElement('span');
    end.className = 'end';
    end.textContent = '— ' + e.data;
    log.appendChild(end);
    if (status) status.textContent = e.data;
    log.dataset.ended = e.data;
  });
})();
