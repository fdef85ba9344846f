//! Unit watches over D-Bus: **not implemented yet**. A `"unit"` is
//! validated and shown in `status`, with why it is off: there is no
//! system bus (the socket below is absent), or the D-Bus client is not
//! built in. The other sources of the service keep working.
//!
//! The planned client is minimal and hand-written: connect to the system
//! bus socket, AUTH EXTERNAL, Hello, AddMatch on PropertiesChanged of the
//! unit's object path, and a [`crate::engine::core::watch::WatchEvent::UnitInactive`]
//! when ActiveState leaves `active`.

use std::path::Path;

/// Where the system bus listens.
pub(super) const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";

/// Why a unit watch is off.
pub(super) fn off_reason() -> String {
    if Path::new(SYSTEM_BUS).exists() {
        "off: the D-Bus unit watch is not implemented yet (the other watches work)".to_string()
    } else {
        format!("off: no system bus ({SYSTEM_BUS} is absent)")
    }
}
