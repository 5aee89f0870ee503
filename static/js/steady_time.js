// The shortest time in which a person sees a change of the page and means to act on what it shows: a control that came
// under her finger less than this before her press is not pressed (steady_press.js), and an alarm on her screen for
// less is not one she saw when she pressed silence (station.js, alarm_audio.js). No other code runs here, so any page
// module may import it.

export const STEADY_MS = 600;
