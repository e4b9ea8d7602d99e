// Submits the SAML auto-post form (the page also works without JavaScript: the
// person presses "Continua"). Served as a file: the CSP allows no inline script.
(function () {
  var form = document.getElementById("saml-autopost");
  if (form) {
    form.submit();
  }
})();
