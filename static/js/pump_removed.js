// A pump deleted while its monitor is open (`device:removed`): the monitor stops showing the pump's state (its last
// state may have looked healthy: "running", "Online") and only says, in its not-live notice, that the pump is no
// longer monitored. Its alarms, controls and events stay as the monitor shows a pump it no longer receives.

/** Mark `root` (the monitor, `data-device-id`) removed when `live` says its pump was deleted. */
export function showWhenRemoved(live, root) {
  live.onStreamStopped(({ deviceId, removed }) => {
    if (removed && deviceId === root.dataset.deviceId) root.dataset.removed = "true";
  });
}
