// The service worker for pdvault's Web Push: shows the vault's message
// (title, body; the link opens the page where the owner decides).
self.addEventListener("push", (event) => {
  let m = { title: "pdvault", body: "", url: "/ui/" };
  try { m = Object.assign(m, event.data.json()); } catch (e) { /* keep the defaults */ }
  event.waitUntil(self.registration.showNotification(m.title, { body: m.body, data: { url: m.url } }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = event.notification.data && event.notification.data.url;
  // Only the vault's own pages are opened.
  if (url && new URL(url).origin === self.location.origin) {
    event.waitUntil(self.clients.openWindow(url));
  }
});
