// "Notify this browser": subscribe to Web Push (W3C Push API) with the
// vault's VAPID key and hand the subscription to the vault through the
// page's own form (with its CSRF token). No data leaves but the
// subscription; notifications carry no record values.
const form = document.getElementById("push-form");
const status = document.getElementById("push-status");
const button = document.getElementById("push-enable");

function keyBytes(b64url) {
  const pad = "=".repeat((4 - (b64url.length % 4)) % 4);
  const raw = atob((b64url + pad).replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

async function enable() {
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
    status.textContent = "This browser does not support Web Push.";
    return;
  }
  if ((await Notification.requestPermission()) !== "granted") {
    status.textContent = "Permission was not given; nothing changed.";
    return;
  }
  const reg = await navigator.serviceWorker.register("/ui/static/sw.js");
  const sub = await reg.pushManager.subscribe({
    userVisibleOnly: true,
    applicationServerKey: keyBytes(form.dataset.vapid),
  });
  form.elements.subscription.value = JSON.stringify(sub.toJSON());
  form.submit();
}

button.addEventListener("click", () => {
  status.textContent = "Asking…";
  enable().catch((e) => { status.textContent = "Could not subscribe: " + e.message; });
});
