//! Entities owned by another subgraph, as a subgraph sees them: only their key (`id`).
//!
//! [`entity_key!`] declares such a type with its constructors; the subgraph then writes its
//! own `#[Object] impl` with the `id` field and the fields it contributes.
//! [`entity_reference!`] declares one the subgraph only points at (the `id` field alone).

/// Declares `$name { id: ID }` for an entity owned by another subgraph, with `stub(Uuid)`
/// (a reference this subgraph makes), `from_key(ID)` (the key as the gateway sent it),
/// `key_id()` (the raw key) and `key()` (the key as a UUID, `None` when it is not one).
#[macro_export]
macro_rules! entity_key {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        pub struct $name {
            id: async_graphql::ID,
        }

        impl $name {
            /// A reference to the entity `id` (only the key is known here).
            pub fn stub(id: uuid::Uuid) -> Self {
                Self {
                    id: async_graphql::ID(id.to_string()),
                }
            }

            /// A reference with the raw key `id`, as the gateway sent it.
            pub fn from_key(id: async_graphql::ID) -> Self {
                Self { id }
            }

            /// The key as sent.
            pub fn key_id(&self) -> &async_graphql::ID {
                &self.id
            }

            /// The key as a UUID; `None` for a key this portal never issued.
            pub fn key(&self) -> Option<uuid::Uuid> {
                uuid::Uuid::parse_str(self.id.as_str()).ok()
            }
        }
    };
}

/// Declares an entity owned by another subgraph that this subgraph only points at: the
/// type of [`entity_key!`] plus its GraphQL object with the `id` field alone, described
/// by `$id_doc`.
#[macro_export]
macro_rules! entity_reference {
    ($(#[$meta:meta])* $name:ident, $id_doc:literal) => {
        $crate::entity_key!($(#[$meta])* $name);

        #[async_graphql::Object]
        impl $name {
            #[doc = $id_doc]
            async fn id(&self) -> &async_graphql::ID {
                self.key_id()
            }
        }
    };
}
