// The sign-in page after a station was signed out: the station's technical alarm stays on, full-width and
// sounding (medium pattern), until someone signs in again. Other pages reach sign-in silently.

import { AlarmAudio } from "./alarm_audio.js";
import { SIGNED_OUT_KEY } from "./station.js";

const since = sessionStorage.getItem(SIGNED_OUT_KEY);
const root = document.getElementById("station");
if (since && root) {
  root.hidden = false;
  const audio = new AlarmAudio({
    root,
    high: document.getElementById("station-audio-high"),
    medium: document.getElementById("station-audio-medium"),
    stateLabel: document.getElementById("station-audio-state"),
    enableButton: document.getElementById("station-audio-enable"),
  });
  audio.update([{ id: "station", priority: "medium", state: "active", acknowledged: false }]);
  document.title = `STATION ALARM · ${document.title}`;
}
