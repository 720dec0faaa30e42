//! Matching inventories against the database: for each installed package, the
//! `affected` rows under its ecosystem and advisory name (a prefix scan), each row's
//! entries checked against the installed version in the ecosystem's order.
//!
//! A [`Matcher`] is one read transaction that threads share: a pass over many
//! inventories (re-judging every image on a node, `policy test`) judges on several
//! threads against one consistent view of the database. Keeping each package name's
//! rows between inventories was tried and dropped: in `benches/rescore.rs` (1,000
//! inventories of 200 packages, 200,000 records) it changed the pass by 3%, within the
//! noise between runs (three interleaved runs each: 1.84 s with, 1.89 s without).

use std::collections::{HashMap, HashSet};

use redb::ReadOnlyTable;

use super::osv::{AdvisoryHead, AffectedPackage, IndexRow};
use super::{AFFECTED, ALIASES, RECORDS, VulnDb, VulnDbError, ecosystem, row};
use crate::report::{Distro, Package, Severity, Vulnerability};

/// One read transaction over the database, matching any number of inventories. `Sync`:
/// threads may share one. A matcher sees the database as it was when it was made.
pub struct Matcher<'db> {
    db: &'db VulnDb,
    /// `None`: no database file (every match is empty).
    tables: Option<Tables>,
}

struct Tables {
    affected: ReadOnlyTable<&'static str, &'static [u8]>,
    records: ReadOnlyTable<&'static str, &'static [u8]>,
    aliases: ReadOnlyTable<&'static str, &'static str>,
}

impl VulnDb {
    /// A matcher over the database as it is now. Errors: the database cannot be read.
    pub fn matcher(&self) -> Result<Matcher<'_>, VulnDbError> {
        let tables = match &self.handle {
            None => None,
            Some(h) => {
                let txn = h.begin_read().map_err(|e| self.storage(e))?;
                Some(Tables {
                    affected: txn.open_table(AFFECTED).map_err(|e| self.storage(e))?,
                    records: txn.open_table(RECORDS).map_err(|e| self.storage(e))?,
                    aliases: txn.open_table(ALIASES).map_err(|e| self.storage(e))?,
                })
            }
        };
        Ok(Matcher { db: self, tables })
    }
}

impl Matcher<'_> {
    /// The vulnerabilities each of `packages` (on `os`) has, in package order; one
    /// finding per (advisory, package name, version, layer).
    pub fn matches(
        &self,
        os: Option<&Distro>,
        packages: &[Package],
    ) -> Result<Vec<Vulnerability>, VulnDbError> {
        let Some(t) = &self.tables else {
            return Ok(Vec::new());
        };
        let mut found = Found::default();
        // Packages alike in name, version and layer share one finding per advisory:
        // each is named by the first of them.
        let mut first: HashMap<(&str, &str, &str), usize> = HashMap::new();
        for (i, p) in packages.iter().enumerate() {
            first
                .entry((p.name.as_str(), p.version.as_str(), p.layer.as_str()))
                .or_insert(i);
        }
        for (i, pkg, target) in packages.iter().enumerate().flat_map(|(i, p)| {
            ecosystem::targets_for(p, os)
                .into_iter()
                .map(move |t| (i, p, t))
        }) {
            let alike = first
                .get(&(pkg.name.as_str(), pkg.version.as_str(), pkg.layer.as_str()))
                .copied()
                .unwrap_or(i);
            let prefix = target.ecosystem.index_prefix(&target.name);
            for item in t
                .affected
                .range(prefix.as_str()..)
                .map_err(|e| self.db.storage(e))?
            {
                let (k, v) = item.map_err(|e| self.db.storage(e))?;
                let Some(id) = k.value().strip_prefix(prefix.as_str()) else {
                    break;
                };
                let row = row::decode(v.value()).map_err(|source| VulnDbError::DamagedRow {
                    path: self.db.path.clone(),
                    key: k.value().to_string(),
                    source,
                })?;
                self.match_row(t, (alike, pkg), &target, id, &row, &mut found)?;
            }
        }
        Ok(found.out)
    }

    /// One `affected` row (`id`'s entries for the target's name) against `pkg`, which
    /// is alike to the package at index `alike`.
    fn match_row(
        &self,
        t: &Tables,
        (alike, pkg): (usize, &Package),
        target: &ecosystem::Target,
        id: &str,
        row: &IndexRow<'_>,
        found: &mut Found,
    ) -> Result<(), VulnDbError> {
        // The release's own archive decides; an Ubuntu Pro (ESM) entry decides only
        // where the archive has none, and names the fix where the archive has none.
        let mut hit: Option<(&AffectedPackage<'_>, Option<String>)> = None;
        let mut pro_hit: Option<(&AffectedPackage<'_>, Option<String>)> = None;
        let (mut archive_entry, mut pro_entry) = (false, false);
        for entry in &row.entries {
            if !ecosystem::applies(&entry.ecosystem, target) {
                continue;
            }
            let pro = ecosystem::is_ubuntu_pro(&entry.ecosystem);
            archive_entry |= !pro;
            pro_entry |= pro;
            let slot = if pro { &mut pro_hit } else { &mut hit };
            if let Some(fixed) = entry.affects(&target.version)
                && slot.as_ref().is_none_or(|(_, f)| f.is_none())
            {
                *slot = Some((entry, fixed));
            }
        }
        let (entry, fixed_in, fix_channel) = match (hit, pro_hit) {
            (Some((e, None)), Some((_, Some(pro_fix)))) => {
                (e, Some(pro_fix), Some("ubuntu-pro".to_string()))
            }
            // Unfixed in the archive, but the installed version is Pro's fix or later:
            // the image gets its packages from Ubuntu Pro.
            (Some((_, None)), None) if pro_entry => return Ok(()),
            (Some((e, fixed)), _) => (e, fixed, None),
            (None, Some((e, fixed))) if !archive_entry => {
                let channel = fixed.is_some().then(|| "ubuntu-pro".to_string());
                (e, fixed, channel)
            }
            (None, _) => return Ok(()),
        };
        if !found.seen.insert((id.to_string(), alike)) {
            return Ok(());
        }
        let adv = Head::from(&row.head);
        let (severity, score) = match entry.severity {
            Some(s) => s,
            None if adv.severity != Severity::Unknown => (adv.severity, adv.score),
            None => self.alias_severity(t, &adv)?,
        };
        found.out.push(Vulnerability {
            id: adv.id,
            aliases: adv.aliases,
            package: pkg.name.clone(),
            installed_version: pkg.version.clone(),
            ecosystem: entry.ecosystem.to_string(),
            fixed_in,
            fix_channel,
            severity,
            score,
            summary: adv.summary,
            purl: pkg.purl.clone(),
            layer: pkg.layer.clone(),
        });
        Ok(())
    }

    fn load(&self, t: &Tables, id: &str) -> Result<Option<Head>, VulnDbError> {
        let Some(v) = t.records.get(id).map_err(|e| self.db.storage(e))? else {
            return Ok(None);
        };
        let h: AdvisoryHead<'_> =
            serde_json::from_slice(v.value()).map_err(|e| self.db.stored_entry(id, e))?;
        Ok(Some(Head::from(&h)))
    }

    /// Severity of a distro advisory that carries none: the most severe rating among
    /// the records it aliases (the upstream CVE record, GHSA records naming the CVE).
    fn alias_severity(
        &self,
        t: &Tables,
        adv: &Head,
    ) -> Result<(Severity, Option<f32>), VulnDbError> {
        let mut best: Option<(Severity, Option<f32>)> = None;
        let mut consider = |s: Severity, score: Option<f32>| {
            if s == Severity::Unknown {
                return;
            }
            let better = match best {
                None => true,
                Some((bs, bscore)) => (s, score.unwrap_or(0.0)) > (bs, bscore.unwrap_or(0.0)),
            };
            if better {
                best = Some((s, score));
            }
        };
        for alias in adv.aliases.iter().take(16) {
            if let Some(a) = self.load(t, alias)? {
                consider(a.severity, a.score);
            }
            let prefix = format!("{alias}\0");
            for row in t
                .aliases
                .range(prefix.as_str()..)
                .map_err(|e| self.db.storage(e))?
                .take(64)
            {
                let (k, v) = row.map_err(|e| self.db.storage(e))?;
                if !k.value().starts_with(&prefix) {
                    break;
                }
                let other = v.value();
                if other == adv.id {
                    continue;
                }
                if let Some(a) = self.load(t, other)? {
                    consider(a.severity, a.score);
                }
            }
        }
        Ok(best.unwrap_or((Severity::Unknown, None)))
    }
}

/// The findings of one inventory so far.
#[derive(Default)]
struct Found {
    out: Vec<Vulnerability>,
    /// (advisory id, index of the first package alike) already reported.
    seen: HashSet<(String, usize)>,
}

/// What a finding takes from its advisory.
struct Head {
    id: String,
    aliases: Vec<String>,
    summary: Option<String>,
    severity: Severity,
    score: Option<f32>,
}

impl From<&AdvisoryHead<'_>> for Head {
    fn from(h: &AdvisoryHead<'_>) -> Head {
        Head {
            id: h.id.to_string(),
            aliases: h.aliases.iter().map(|a| a.to_string()).collect(),
            summary: h.summary.as_ref().map(|s| s.to_string()),
            severity: h.severity,
            score: h.score,
        }
    }
}

#[cfg(test)]
mod tests {
    /// Threads share one matcher during a re-judging pass.
    #[test]
    fn a_matcher_is_shared_between_threads() {
        fn sync<T: Sync + Send>() {}
        sync::<super::Matcher<'static>>();
    }
}
