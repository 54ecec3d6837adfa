// Called by loading.test.js through playwright: the status of every tab.
// A tab's status is 'loading' while any of its frames is loading (Chromium's
// WebContents::IsLoading, what drives the tab's loading indicator).
self.tabStatus = async () => (await chrome.tabs.query({})).map((tab) => ({ url: tab.url, status: tab.status }));
