//! Who may use the admin socket: root, or a process whose user is in `admin_group`
//! (primary or supplementary). The socket's 0660 mode already says so; this check holds
//! even when someone loosens the mode or the socket is passed on.

use nix::unistd::{Gid, Group, Uid, User};

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("socket group {0:?} does not exist")]
    UnknownGroup(String),
}

/// The group allowed on the admin socket, resolved once at startup.
#[derive(Debug, Clone)]
pub struct PeerAccess {
    group_name: String,
    gid: u32,
}

impl PeerAccess {
    pub fn for_group(name: &str) -> Result<PeerAccess, PeerError> {
        let group = Group::from_name(name)
            .ok()
            .flatten()
            .ok_or_else(|| PeerError::UnknownGroup(name.to_string()))?;
        Ok(PeerAccess {
            group_name: name.to_string(),
            gid: group.gid.as_raw(),
        })
    }

    pub fn group_name(&self) -> &str {
        &self.group_name
    }

    /// `Ok` when the peer may talk to us, else the message it gets with the 403.
    pub fn check(&self, uid: u32, gid: u32) -> Result<(), String> {
        // Cheap cases first: no passwd/group lookups for root or the primary group.
        if peer_allowed(uid, gid, &[], self.gid) {
            return Ok(());
        }
        let supplementary = supplementary_groups(uid);
        if peer_allowed(uid, gid, &supplementary, self.gid) {
            return Ok(());
        }
        Err(format!(
            "permission denied: uid {uid} is neither root nor a member of group {:?} \
             (server.admin_group); run as root or add the user to that group",
            self.group_name
        ))
    }
}

/// The decision itself, without lookups: root, or the group is the peer's primary group
/// or one of its user's supplementary groups.
pub fn peer_allowed(uid: u32, gid: u32, supplementary: &[u32], group: u32) -> bool {
    uid == 0 || gid == group || supplementary.contains(&group)
}

/// The groups the peer's *user* belongs to (from the group database). A lookup failure
/// means no extra groups: the answer is then "no", never "yes".
fn supplementary_groups(uid: u32) -> Vec<u32> {
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
        return Vec::new();
    };
    let Ok(name) = std::ffi::CString::new(user.name.as_bytes()) else {
        return Vec::new();
    };
    nix::unistd::getgrouplist(&name, user.gid)
        .map(|gs| gs.into_iter().map(Gid::as_raw).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision() {
        let adm = 4;
        assert!(peer_allowed(0, 1000, &[], adm));
        assert!(peer_allowed(1000, adm, &[], adm));
        assert!(peer_allowed(1000, 1000, &[27, adm], adm));
        assert!(!peer_allowed(1000, 1000, &[27], adm));
        assert!(!peer_allowed(65534, 65534, &[], adm));
    }

    #[test]
    fn lookups() {
        let root = PeerAccess::for_group("root").unwrap();
        assert!(root.check(0, 0).is_ok());
        let e = root.check(65534, 65534).unwrap_err();
        assert!(e.contains("uid 65534") && e.contains("\"root\""), "{e}");
        assert!(PeerAccess::for_group("no-such-group-pullwarden").is_err());
    }
}
