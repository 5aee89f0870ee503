// The Socket.IO event names and the state groupings, as the server defines them (protocol/events.py,
// devices/states.py): templates/base.html writes them into every page; nothing here repeats them.

const element = document.getElementById("protocol-data");
const data = element ? JSON.parse(element.textContent) : null;
if (!data) throw new Error("PumpStream: the page has no protocol-data (templates/base.html)");

export const EVENTS = Object.freeze(data.events);
export const ACTIVE_SESSION_STATUSES = new Set(data.activeSessionStatuses);
export const ON_PUMP_SESSION_STATUSES = new Set(data.onPumpSessionStatuses);
export const UNSETTLED_COMMAND_STATES = new Set(data.unsettledCommandStates);
export const INFUSING_PUMP_STATES = new Set(data.infusingPumpStates);
export const REFUSED_BY_THE_PUMP = data.refusedByThePump; // a session reason beginning so: the pump refused the order
// A command whose request reaches the server more than this after the press is refused (devices/services/asked_at.py).
export const ASKED_AT_MOST_S = data.askedAtMostS;
