//! What secrets and configs share in the control API: lookup by ID, name or
//! unique ID prefix; a create that takes its name through a guard object
//! (so two creates on different managers cannot both take one name); a
//! remove refused while a service uses the object, in Docker's words; and
//! the resolution of a service spec's references from names to IDs.
//! `secrets` and `configs` are the two kinds; each says how it stores a value.

use rswarm_proto::spec::secrets::Kind;
use rswarm_proto::types::{Annotations, ContainerSpec, Service, ServiceSpec};
use rswarm_raft::{Op, Store, StoreError};

use crate::error::ManagerError;
use crate::objects::{self, Object};

/// A secret or config object, as the shared code sees it.
pub(crate) trait StoredFile: Object {
    const WORD: Kind;
    /// Store kind of the name guards.
    const NAME_KIND: &'static str;
    fn annotations(&self) -> Option<&Annotations>;
    /// The IDs a container spec refers to.
    fn referenced(c: &ContainerSpec) -> Vec<&str>;
}

/// The object's name.
pub(crate) fn name<T: StoredFile>(o: &T) -> &str {
    o.annotations().map(|a| a.name.as_str()).unwrap_or("")
}

/// By full ID, name, or unique ID prefix (Docker's order).
pub(crate) fn resolve<T: StoredFile>(store: &Store, reference: &str) -> Result<T, ManagerError> {
    let word = T::WORD.word();
    let all = objects::list::<T>(store)?;
    if let Some(o) = all.iter().find(|o| o.key() == reference) {
        return Ok(o.clone());
    }
    if let Some(o) = all.iter().find(|o| name(*o) == reference) {
        return Ok(o.clone());
    }
    let by_prefix: Vec<&T> = all
        .iter()
        .filter(|o| !reference.is_empty() && o.key().starts_with(reference))
        .collect();
    match by_prefix.len() {
        1 => Ok(by_prefix[0].clone()),
        0 => Err(ManagerError::NotFound(format!(
            "{word} {reference} not found"
        ))),
        n => Err(ManagerError::InvalidArgument(format!(
            "{word} {reference} is ambiguous ({n} matches found)"
        ))),
    }
}

/// All objects of the kind, by name.
pub(crate) fn list<T: StoredFile>(store: &Store) -> Result<Vec<T>, ManagerError> {
    let mut all = objects::list::<T>(store)?;
    all.sort_by(|a, b| name(a).cmp(name(b)).then(a.key().cmp(b.key())));
    Ok(all)
}

/// Stores a new object under a name nobody holds. `existing` decides what an
/// object already holding the name means: `Ok(Some(it))` answers it (a
/// `reuse_if_same` create), `Ok(None)` or an error refuses.
pub(crate) async fn create<T: StoredFile>(
    store: &Store,
    object: T,
    existing: impl Fn(&T) -> Result<Option<T>, ManagerError>,
) -> Result<T, ManagerError> {
    let word = T::WORD.word();
    let name = name(&object).to_string();
    if let Ok(found) = resolve::<T>(store, &name) {
        if name_of(&found) == name {
            return match existing(&found)? {
                Some(o) => Ok(o),
                None => Err(already_exists(word, &name)),
            };
        }
    }
    let ops = vec![
        objects::put(&object),
        Op::Put {
            kind: T::NAME_KIND.into(),
            id: name.clone(),
            value: object.key().as_bytes().to_vec(),
            expect_version: Some(0),
        },
    ];
    match store.write(ops).await {
        Ok(_) => objects::get::<T>(store, object.key())?
            .ok_or_else(|| ManagerError::Internal(format!("{word} vanished after create"))),
        // Someone took the name meanwhile.
        Err(StoreError::Conflict { .. }) => Err(already_exists(word, &name)),
        Err(e) => Err(e.into()),
    }
}

fn name_of<T: StoredFile>(o: &T) -> String {
    name(o).to_string()
}

fn already_exists(word: &str, name: &str) -> ManagerError {
    ManagerError::AlreadyExists(format!("{word} {name} already exists"))
}

/// The names of the services whose spec refers to `id`, sorted.
pub(crate) fn users<T: StoredFile>(services: &[Service], id: &str) -> Vec<String> {
    let mut out: Vec<String> = services
        .iter()
        .filter(|s| {
            s.spec
                .as_ref()
                .and_then(|s| s.task.as_ref())
                .and_then(|t| t.container.as_ref())
                .is_some_and(|c| T::referenced(c).contains(&id))
        })
        .map(|s| objects::service_name(s).to_string())
        .collect();
    out.sort();
    out
}

/// Removes an object no service refers to (swarmkit's words otherwise).
pub(crate) async fn remove<T: StoredFile>(
    store: &Store,
    reference: &str,
) -> Result<(), ManagerError> {
    let word = T::WORD.word();
    let o = resolve::<T>(store, reference)?;
    let users = users::<T>(&objects::list::<Service>(store)?, o.key());
    if !users.is_empty() {
        let plural = if users.len() > 1 { "s" } else { "" };
        return Err(ManagerError::InvalidArgument(format!(
            "{word} '{}' is in use by the following service{plural}: {}",
            name(&o),
            users.join(", ")
        )));
    }
    let guard = store.get(T::NAME_KIND, name(&o))?;
    let mut ops = vec![objects::delete(T::KIND, o.key(), o.meta())];
    if let Some(g) = guard.filter(|g| g.value == o.key().as_bytes()) {
        ops.push(Op::Delete {
            kind: T::NAME_KIND.into(),
            id: g.id,
            expect_version: Some(g.version),
        });
    }
    match store.write(ops).await {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict { .. }) => Err(ManagerError::FailedPrecondition(format!(
            "{word} {} changed while it was being removed; try again",
            name(&o)
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Gives every secret and config reference of a service spec the ID of the
/// object its name names (an ID that still exists is kept); an unknown one
/// is refused ("secret not found: x").
pub(crate) fn resolve_references(
    store: &Store,
    spec: &mut ServiceSpec,
) -> Result<(), ManagerError> {
    let Some(c) = spec.task.as_mut().and_then(|t| t.container.as_mut()) else {
        return Ok(());
    };
    if !c.secrets.is_empty() {
        let all = objects::list::<rswarm_proto::types::Secret>(store)?;
        for r in &mut c.secrets {
            r.secret_id = id_for(&all, &r.secret_id, &r.secret_name)?;
        }
    }
    if !c.configs.is_empty() {
        let all = objects::list::<rswarm_proto::types::Config>(store)?;
        for r in &mut c.configs {
            r.config_id = id_for(&all, &r.config_id, &r.config_name)?;
        }
    }
    Ok(())
}

fn id_for<T: StoredFile>(all: &[T], id: &str, wanted: &str) -> Result<String, ManagerError> {
    all.iter()
        .find(|o| !id.is_empty() && o.key() == id && name(*o) == wanted)
        .or_else(|| all.iter().find(|o| name(*o) == wanted))
        .map(|o| o.key().to_string())
        .ok_or_else(|| {
            ManagerError::InvalidArgument(format!("{} not found: {wanted}", T::WORD.word()))
        })
}
