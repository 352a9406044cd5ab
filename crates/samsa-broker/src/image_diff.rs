//! What a metadata change means for the partitions hosted here: the
//! difference between the image last reconciled and the current one, so
//! that [`crate::Broker::reconcile`] applies only the partitions a batch
//! changed, not every hosted partition on every batch.
//!
//! Applying records copies only the topics they touch (`Arc::make_mut`), so
//! an unchanged topic is the same `Arc` in both images and is skipped
//! without looking at its partitions. In a changed topic, a partition is
//! applied again only when its own image or the topic's configs differ. A
//! change of this broker's dynamic configs changes every topic's settings:
//! then everything is applied, as on the first reconcile.

use std::collections::HashSet;
use std::sync::Arc;

use samsa_metadata::{MetadataImage, TopicImage};
use samsa_model::{BrokerId, TopicId};

use crate::purgatory::PartitionKey;

/// The partitions one reconcile has to look at.
pub(crate) struct ImageDiff {
    /// Hosted here (per the current image) and new or changed: (key, its
    /// topic, its index in the topic's partitions).
    pub apply: Vec<(PartitionKey, Arc<TopicImage>, usize)>,
    /// Everything is applied (first reconcile, or broker configs changed).
    full: bool,
    /// Topics that changed or disappeared: only their partitions can have
    /// stopped being hosted here.
    changed_topics: HashSet<TopicId>,
}

impl ImageDiff {
    /// What changed for broker `me` from `last` (`None`: nothing applied
    /// yet) to `image`.
    pub(crate) fn new(
        last: Option<&MetadataImage>,
        image: &MetadataImage,
        me: BrokerId,
    ) -> ImageDiff {
        let last =
            last.filter(|l| l.dynamic_broker_configs(me) == image.dynamic_broker_configs(me));
        let mut apply = Vec::new();
        let mut changed_topics = HashSet::new();
        for topic in image.topics.values() {
            let before = last.and_then(|l| l.topics.get(&topic.name));
            if before.is_some_and(|b| Arc::ptr_eq(b, topic)) {
                continue;
            }
            changed_topics.insert(topic.id);
            // The same topic (not one recreated under its name) with the
            // same configs: only partitions whose image changed.
            let same = before.filter(|b| b.id == topic.id && b.configs == topic.configs);
            for (i, p) in topic.partitions.iter().enumerate() {
                if !p.replicas.contains(&me) {
                    continue;
                }
                if same.is_some_and(|b| b.partitions.get(i) == Some(p)) {
                    continue;
                }
                apply.push(((topic.id, p.index.get()), topic.clone(), i));
            }
        }
        if let Some(l) = last {
            for before in l.topics.values() {
                if image
                    .topics
                    .get(&before.name)
                    .is_none_or(|t| t.id != before.id)
                {
                    changed_topics.insert(before.id);
                }
            }
        }
        ImageDiff {
            apply,
            full: last.is_none(),
            changed_topics,
        }
    }

    /// Whether the hosted partition `key` is no longer hosted here per
    /// `image` (its topic deleted, or this broker no longer a replica).
    pub(crate) fn removes(&self, image: &MetadataImage, me: BrokerId, key: PartitionKey) -> bool {
        if !self.full && !self.changed_topics.contains(&key.0) {
            return false;
        }
        let hosted = image
            .topic_by_id(key.0)
            .and_then(|t| {
                usize::try_from(key.1)
                    .ok()
                    .and_then(|i| t.partitions.get(i))
            })
            .is_some_and(|p| p.replicas.contains(&me));
        !hosted
    }
}
