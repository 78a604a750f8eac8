// The sign-in page: shows the refusal after a wrong token and carries the page asked for.

const query = new URLSearchParams(location.search);
if (query.get("error") === "1") {
  document.getElementById("signin-error").hidden = false;
}
const next = query.get("next");
if (next && next.startsWith("/ui/") && !next.startsWith("//")) {
  document.getElementById("next").value = next;
}
