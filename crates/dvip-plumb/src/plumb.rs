//! Plumbing: putting DuraVIP addresses on interfaces and taking them off, over netlink.
//!
//! Owns every change dvip makes to the kernel's address lists. It must not decide which
//! addresses to hold (the core does) and never touches an address it did not add: every
//! address dvip adds carries the address protocol [`DVIP_ADDRESS_PROTOCOL`] (`IFA_PROTO`,
//! Linux 6.1 and later), and removal and listing only consider addresses that carry it.
//!
//! Addresses are added with a finite lifetime (`valid_lft` and `preferred_lft`) that a running
//! daemon refreshes by adding them again. If the daemon dies without cleaning up (kill -9, a
//! crash), the kernel drops its addresses by itself when the lifetime runs out, so they do not
//! keep answering next to their new owner.
//!
//! With spreading on ([`Plumber::spread_over`]), IPv4 addresses go on holder interfaces
//! instead of the configured one ([`crate::spread`] says which); the plumber remembers where it
//! put each, so a refresh or a removal finds it there.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressMessage, AddressProtocol, CacheInfo,
};
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourState};
use rtnetlink::{Handle, LinkDummy, LinkIfb, LinkUnspec};
use tracing::warn;

use crate::spread::{answers_for_any_interface, holder_name, holder_of, HOLDER_PREFIX};

/// The `IFA_PROTO` value that marks an address as dvip's.
pub const DVIP_ADDRESS_PROTOCOL: u8 = 0xd5;

/// How long a plumbed address lives unless refreshed, unless told otherwise: the core's
/// shortest lifetime.
pub const ADDRESS_LIFETIME_DEFAULT: Duration = dvip_core::ADDRESS_LIFETIME_MIN;

/// How many netlink requests [`Plumber::plumb_many`] keeps in flight.
pub const PLUMB_IN_FLIGHT: usize = 64;

/// A plumbing failure. Nothing was changed unless the variant says so.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlumbError {
    /// The netlink socket could not be opened (the environment failed).
    #[error("cannot open a netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    /// The interface a topology hint names does not exist on this machine (the configuration
    /// or the machine is wrong).
    #[error("interface `{0}` does not exist on this machine")]
    NoSuchInterface(String),
    /// The kernel refused the request.
    #[error("the kernel refused to {what} {address}: {source}")]
    Kernel {
        /// What was asked.
        what: &'static str,
        /// The address.
        address: IpAddr,
        /// The kernel's answer.
        #[source]
        source: rtnetlink::Error,
    },
    /// Listing addresses failed.
    #[error("cannot list addresses: {0}")]
    List(#[source] rtnetlink::Error),
    /// A holder interface could not be made or brought up.
    #[error("cannot make the holder interface `{name}` (neither a dummy nor an ifb): {source}")]
    Holder {
        /// The holder's name.
        name: String,
        /// The kernel's answer.
        #[source]
        source: rtnetlink::Error,
    },
    /// A holder interface could not be deleted.
    #[error("cannot delete the holder interface `{name}`: {source}")]
    HolderRemoval {
        /// The holder's name.
        name: String,
        /// The kernel's answer.
        #[source]
        source: rtnetlink::Error,
    },
}

/// An address dvip added, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlumbedAddress {
    /// The address.
    pub address: IpAddr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// The interface index.
    pub interface_index: u32,
    /// Seconds left before the kernel drops it, if it has a lifetime.
    pub valid_secs: Option<u32>,
}

/// A host the kernel knows on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Neighbour {
    /// Its address.
    pub address: IpAddr,
    /// Its link-layer (MAC) address.
    pub mac: [u8; 6],
}

/// Where an address goes: an interface and the prefix length it gets there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Place {
    index: u32,
    prefix_len: u8,
    on_holder: bool,
}

/// A netlink connection for plumbing, with a cache of interface indexes.
pub struct Plumber {
    handle: Handle,
    interfaces: BTreeMap<String, u32>,
    lifetime: Duration,
    /// How many holder interfaces IPv4 addresses are spread over; 0: none.
    holders: u16,
    /// Where this plumber put each address it holds, on a holder or not: a refresh must find
    /// the address where it is, even after the holder count changed.
    placed: HashMap<IpAddr, Place>,
    /// Per configured interface: whether the kernel answers ARP there for addresses on a
    /// holder (if not, its addresses are not spread).
    answers_any: BTreeMap<String, bool>,
}

impl Plumber {
    /// Opens a netlink connection on the current tokio runtime, in the calling thread's
    /// network namespace.
    pub fn connect(lifetime: Duration) -> Result<Self, PlumbError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(PlumbError::Socket)?;
        tokio::spawn(connection);
        Ok(Self {
            handle,
            interfaces: BTreeMap::new(),
            lifetime,
            holders: 0,
            placed: HashMap::new(),
            answers_any: BTreeMap::new(),
        })
    }

    /// Spreads the IPv4 addresses it plumbs from now on over `holders` holder interfaces
    /// (made when first needed), where the configured interface allows it (see
    /// [`crate::spread`]); 0 keeps every address on its configured interface. Addresses
    /// already plumbed stay where they are.
    pub fn spread_over(&mut self, holders: u16) {
        self.holders = holders;
    }

    /// How many holder interfaces it spreads IPv4 addresses over.
    pub fn holders(&self) -> u16 {
        self.holders
    }

    /// How many of the addresses it plumbed sit on a holder.
    pub fn on_holders(&self) -> usize {
        self.placed.values().filter(|place| place.on_holder).count()
    }

    /// How long the addresses it adds live unless added again.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Forgets the cached index of `name` (the interface went away; one made again under the
    /// same name has a new index).
    pub fn forget_interface(&mut self, name: &str) {
        if let Some(index) = self.interfaces.remove(name) {
            // Its addresses went with it.
            self.placed.retain(|_, place| place.index != index);
        }
    }

    /// Makes every holder now (at start, or when a reload raised the count), so that a takeover
    /// does not wait for interfaces to be created. One that cannot be made turns spreading off,
    /// as when a takeover finds one missing.
    pub async fn make_holders(&mut self) {
        for number in 0..self.holders {
            if let Err(e) = self.holder_index(number).await {
                self.stop_spreading(&e);
                return;
            }
        }
    }

    /// A holder could not be made: every address from now on stays on its configured
    /// interface (those already on holders stay there).
    fn stop_spreading(&mut self, why: &PlumbError) {
        warn!("{why}: addresses stay on their configured interfaces");
        self.holders = 0;
    }

    /// Deletes every holder interface (on a clean stop, once every address is handed over), so
    /// a host where dvipd is stopped keeps no trace of it. Returns how many there were.
    pub async fn remove_holders(&mut self) -> Result<usize, PlumbError> {
        let names: Vec<String> = crate::watch::links()
            .await
            .map_err(PlumbError::Socket)?
            .into_keys()
            .filter(|name| name.starts_with(HOLDER_PREFIX))
            .collect();
        for name in &names {
            let index = self.interface_index(name).await?;
            self.handle
                .link()
                .del(index)
                .execute()
                .await
                .map_err(|source| PlumbError::HolderRemoval {
                    name: name.clone(),
                    source,
                })?;
            self.forget_interface(name);
        }
        Ok(names.len())
    }

    /// Where `address` goes when plumbed for `interface`: where it already is, on its holder
    /// if it is spread, or on `interface`.
    async fn place(
        &mut self,
        address: IpAddr,
        prefix_len: u8,
        interface: &str,
    ) -> Result<Place, PlumbError> {
        match self.placed.get(&address) {
            Some(&place) if place.on_holder => return Ok(place),
            // Plumbed before spreading began (a reload grew the configuration): it stays on
            // its interface, or the refresh would add a second copy on a holder.
            Some(_) => return self.unspread(prefix_len, interface).await,
            None => {}
        }
        if let Some(number) = holder_of(address, self.holders) {
            if self.spreads_from(interface) {
                match self.holder_index(number).await {
                    // A holder's address is a /32 whatever the hint says: a shorter prefix
                    // would route the whole subnet into the holder.
                    Ok(index) => {
                        return Ok(Place {
                            index,
                            prefix_len: 32,
                            on_holder: true,
                        })
                    }
                    Err(e) => self.stop_spreading(&e),
                }
            }
        }
        self.unspread(prefix_len, interface).await
    }

    /// `interface` itself, with the configured prefix.
    async fn unspread(&mut self, prefix_len: u8, interface: &str) -> Result<Place, PlumbError> {
        Ok(Place {
            index: self.interface_index(interface).await?,
            prefix_len,
            on_holder: false,
        })
    }

    /// Where `address`, plumbed for `interface`, is now (or would be, unspread): where this
    /// plumber put it, else `interface`.
    async fn current_place(
        &mut self,
        address: IpAddr,
        prefix_len: u8,
        interface: &str,
    ) -> Result<Place, PlumbError> {
        match self.placed.get(&address) {
            Some(&place) => Ok(place),
            None => self.unspread(prefix_len, interface).await,
        }
    }

    fn spreads_from(&mut self, interface: &str) -> bool {
        if let Some(&answers) = self.answers_any.get(interface) {
            return answers;
        }
        let answers = match answers_for_any_interface(interface) {
            Ok(true) => true,
            Ok(false) => {
                warn!(
                    %interface,
                    "arp_ignore is set: this interface's addresses are not spread over holders"
                );
                false
            }
            Err(e) => {
                warn!(%interface, "cannot read arp_ignore ({e}): not spreading its addresses");
                false
            }
        };
        self.answers_any.insert(interface.to_owned(), answers);
        answers
    }

    /// The index of holder `number`, made (a dummy interface, or an ifb where the kernel has
    /// no dummy driver) and brought up if needed.
    async fn holder_index(&mut self, number: u16) -> Result<u32, PlumbError> {
        let name = holder_name(number);
        if let Some(&index) = self.interfaces.get(&name) {
            return Ok(index);
        }
        let holder_error = |source| PlumbError::Holder {
            name: name.clone(),
            source,
        };
        let index = match self.interface_index(&name).await {
            Ok(index) => index,
            Err(_) => {
                let dummy = self
                    .handle
                    .link()
                    .add(LinkDummy::new(&name).build())
                    .execute()
                    .await;
                if dummy.is_err() {
                    self.handle
                        .link()
                        .add(LinkIfb::new(&name).build())
                        .execute()
                        .await
                        .map_err(holder_error)?;
                }
                self.interface_index(&name).await?
            }
        };
        // A holder carries IPv4 only (IPv6 is never spread), so no link-local address either:
        // it would only be noise in `ip addr`. Where IPv6 is off there is no such file.
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1");
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(holder_error)?;
        Ok(index)
    }

    async fn interface_index(&mut self, name: &str) -> Result<u32, PlumbError> {
        if let Some(&index) = self.interfaces.get(name) {
            return Ok(index);
        }
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute();
        let index = match links.try_next().await {
            Ok(Some(link)) => link.header.index,
            Ok(None) | Err(_) => return Err(PlumbError::NoSuchInterface(name.to_owned())),
        };
        self.interfaces.insert(name.to_owned(), index);
        Ok(index)
    }

    /// Adds (or refreshes) `address/prefix_len` on `interface`, marked as dvip's, with the
    /// plumber's lifetime.
    pub async fn plumb(
        &mut self,
        address: IpAddr,
        prefix_len: u8,
        interface: &str,
    ) -> Result<(), PlumbError> {
        let mut results = self
            .plumb_many(&[(address, prefix_len, interface.to_owned())])
            .await;
        results.pop().expect("plumb_many answers once per address")
    }

    /// The request that adds `address` marked as dvip's, with the plumber's lifetime.
    fn add_request(&self, place: Place, address: IpAddr) -> (IpAddr, rtnetlink::AddressAddRequest) {
        let seconds = u32::try_from(self.lifetime.as_secs())
            .unwrap_or(u32::MAX)
            .max(1);
        let mut request = self
            .handle
            .address()
            .add(place.index, address, place.prefix_len);
        let attributes = &mut request.message_mut().attributes;
        attributes.push(AddressAttribute::Protocol(AddressProtocol::Other(
            DVIP_ADDRESS_PROTOCOL,
        )));
        let mut lifetime = CacheInfo::default();
        lifetime.ifa_preferred = seconds;
        lifetime.ifa_valid = seconds;
        attributes.push(AddressAttribute::CacheInfo(lifetime));
        if address.is_ipv6() {
            // The address is moving here from another node: duplicate detection would hold it
            // tentative (unusable) for a second while the old owner is already gone.
            attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        (address, request)
    }

    /// Adds (or refreshes) many addresses, with up to [`PLUMB_IN_FLIGHT`] requests in flight at
    /// once instead of one round trip each. Results come back in the order given.
    pub async fn plumb_many(
        &mut self,
        items: &[(IpAddr, u8, String)],
    ) -> Vec<Result<(), PlumbError>> {
        let mut places = Vec::with_capacity(items.len());
        for (address, prefix_len, interface) in items {
            places.push(self.place(*address, *prefix_len, interface).await);
        }
        let placed: Vec<Option<Place>> = places
            .iter()
            .map(|place| place.as_ref().ok().copied())
            .collect();
        let results = self
            .pipelined(items, places, |plumber, place, address| {
                let (address, request) = plumber.add_request(place, address);
                async move {
                    request
                        .replace()
                        .execute()
                        .await
                        .map_err(|source| PlumbError::Kernel {
                            what: "add",
                            address,
                            source,
                        })
                }
            })
            .await;
        for ((item, place), result) in items.iter().zip(placed).zip(&results) {
            if let (Some(place), Ok(())) = (place, result) {
                self.placed.insert(item.0, place);
            }
        }
        results
    }

    /// Removes many addresses this process plumbed itself, pipelined like
    /// [`Plumber::plumb_many`]. Absent is not an error. Results come back in the order given.
    pub async fn unplumb_many(
        &mut self,
        items: &[(IpAddr, u8, String)],
    ) -> Vec<Result<(), PlumbError>> {
        let mut places = Vec::with_capacity(items.len());
        for (address, prefix_len, interface) in items {
            places.push(self.current_place(*address, *prefix_len, interface).await);
        }
        let results = self
            .pipelined(items, places, |plumber, place, address| {
                delete(
                    plumber.handle.clone(),
                    removal(place.index, address, place.prefix_len),
                    address,
                )
            })
            .await;
        for (item, result) in items.iter().zip(&results) {
            if result.is_ok() {
                self.placed.remove(&item.0);
            }
        }
        results
    }

    /// One request per item, `request` making it from where the item goes, with up to
    /// [`PLUMB_IN_FLIGHT`] in flight; an item whose place is unknown fails alone.
    async fn pipelined<F, Fut>(
        &self,
        items: &[(IpAddr, u8, String)],
        places: Vec<Result<Place, PlumbError>>,
        request: F,
    ) -> Vec<Result<(), PlumbError>>
    where
        F: Fn(&Self, Place, IpAddr) -> Fut,
        Fut: std::future::Future<Output = Result<(), PlumbError>>,
    {
        let requests: Vec<_> = items
            .iter()
            .zip(places)
            .map(|(&(address, _, _), place)| {
                let pending = place.map(|place| request(self, place, address));
                async move { pending?.await }
            })
            .collect();
        futures_util::stream::iter(requests)
            .buffered(PLUMB_IN_FLIGHT)
            .collect()
            .await
    }

    /// Every address on this machine that dvip added.
    pub async fn ours(&mut self) -> Result<Vec<PlumbedAddress>, PlumbError> {
        Ok(self
            .our_messages()
            .await?
            .into_iter()
            .map(|(plumbed, _)| plumbed)
            .collect())
    }

    /// Every address on this machine that dvip did not add: interface and management
    /// addresses, and anything an operator added by hand.
    pub async fn foreign(&mut self) -> Result<Vec<IpAddr>, PlumbError> {
        Ok(self
            .messages(false)
            .await?
            .into_iter()
            .map(|(plumbed, _)| plumbed.address)
            .collect())
    }

    /// The neighbours the kernel knows on `interface` (reachable, stale, being probed, or
    /// permanent), with their link-layer addresses: who a unicast announcement goes to.
    pub async fn neighbours(&mut self, interface: &str) -> Result<Vec<Neighbour>, PlumbError> {
        let index = self.interface_index(interface).await?;
        let mut out = Vec::new();
        let mut dump = self.handle.neighbours().get().execute();
        while let Some(message) = dump.try_next().await.map_err(PlumbError::List)? {
            if message.header.ifindex != index
                || !matches!(
                    message.header.state,
                    NeighbourState::Reachable
                        | NeighbourState::Stale
                        | NeighbourState::Delay
                        | NeighbourState::Probe
                        | NeighbourState::Permanent
                )
            {
                continue;
            }
            let mut address = None;
            let mut mac = None;
            for attribute in &message.attributes {
                match attribute {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                        address = Some(IpAddr::V4(*a));
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                        address = Some(IpAddr::V6(*a));
                    }
                    NeighbourAttribute::LinkLayerAddress(bytes) => {
                        mac = <[u8; 6]>::try_from(bytes.as_slice()).ok();
                    }
                    _ => {}
                }
            }
            if let (Some(address), Some(mac)) = (address, mac) {
                out.push(Neighbour { address, mac });
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    async fn our_messages(&mut self) -> Result<Vec<(PlumbedAddress, AddressMessage)>, PlumbError> {
        self.messages(true).await
    }

    /// The machine's addresses that carry dvip's mark (`ours`) or do not.
    async fn messages(
        &mut self,
        ours: bool,
    ) -> Result<Vec<(PlumbedAddress, AddressMessage)>, PlumbError> {
        let mut out = Vec::new();
        let mut dump = self.handle.address().get().execute();
        while let Some(message) = dump.try_next().await.map_err(PlumbError::List)? {
            let marked = message
                .attributes
                .iter()
                .any(|a| matches!(a, AddressAttribute::Protocol(AddressProtocol::Other(p)) if *p == DVIP_ADDRESS_PROTOCOL));
            if marked != ours {
                continue;
            }
            // For IPv4, IFA_LOCAL is the interface's own address (IFA_ADDRESS may be a peer).
            let local = message.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let address = local.or_else(|| {
                message.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
            let Some(address) = address else { continue };
            let valid_secs = message.attributes.iter().find_map(|a| match a {
                AddressAttribute::CacheInfo(c) if c.ifa_valid != u32::MAX => Some(c.ifa_valid),
                _ => None,
            });
            let plumbed = PlumbedAddress {
                address,
                prefix_len: message.header.prefix_len,
                interface_index: message.header.index,
                valid_secs,
            };
            out.push((plumbed, message));
        }
        Ok(out)
    }

    /// Removes `address` if dvip added it, wherever it is. Absent is not an error.
    pub async fn unplumb(&mut self, address: IpAddr) -> Result<bool, PlumbError> {
        let mut removed = false;
        for (plumbed, message) in self.our_messages().await? {
            if plumbed.address == address {
                self.delete(message, address).await?;
                self.placed.remove(&address);
                removed = true;
            }
        }
        Ok(removed)
    }

    /// Removes the addresses among `addresses` that dvip did not add (a migration from
    /// another failover system that left them plumbed). Returns those removed.
    pub async fn remove_foreign(
        &mut self,
        addresses: &[IpAddr],
    ) -> Result<Vec<IpAddr>, PlumbError> {
        let mut removed = Vec::new();
        for (plumbed, message) in self.messages(false).await? {
            if addresses.contains(&plumbed.address) {
                self.delete(message, plumbed.address).await?;
                removed.push(plumbed.address);
            }
        }
        Ok(removed)
    }

    /// Removes every address dvip added on this machine (at start, after a crash). Returns
    /// what was removed.
    ///
    /// Requests are pipelined like [`Plumber::plumb_many`]'s, in the kernel's list order (the
    /// front of the list is the cheapest to remove): the guardian runs this while another node
    /// already answers for these addresses.
    pub async fn remove_all_ours(&mut self) -> Result<Vec<PlumbedAddress>, PlumbError> {
        let ours = self.our_messages().await?;
        let handle = self.handle.clone();
        let results: Vec<Result<(), PlumbError>> = futures_util::stream::iter(ours.iter())
            .map(|(plumbed, message)| delete(handle.clone(), message.clone(), plumbed.address))
            .buffered(PLUMB_IN_FLIGHT)
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        self.placed.clear();
        Ok(ours.into_iter().map(|(plumbed, _)| plumbed).collect())
    }

    async fn delete(&mut self, message: AddressMessage, address: IpAddr) -> Result<(), PlumbError> {
        delete(self.handle.clone(), message, address).await
    }
}

/// The request that removes `address/prefix_len` from the interface `index`.
fn removal(index: u32, address: IpAddr, prefix_len: u8) -> AddressMessage {
    match address {
        IpAddr::V4(v4) => rtnetlink::AddressMessageBuilder::<std::net::Ipv4Addr>::new()
            .index(index)
            .address(v4, prefix_len)
            .build(),
        IpAddr::V6(v6) => rtnetlink::AddressMessageBuilder::<std::net::Ipv6Addr>::new()
            .index(index)
            .address(v6, prefix_len)
            .build(),
    }
}

/// Removes the address `message` describes.
async fn delete(
    handle: Handle,
    message: AddressMessage,
    address: IpAddr,
) -> Result<(), PlumbError> {
    match handle.address().del(message).execute().await {
        Ok(()) => Ok(()),
        // Gone meanwhile (its lifetime ran out, or someone removed it): what we wanted.
        Err(rtnetlink::Error::NetlinkError(e))
            if e.code
                .is_some_and(|c| c.get() == -EADDRNOTAVAIL || c.get() == -ENOENT) =>
        {
            Ok(())
        }
        Err(source) => Err(PlumbError::Kernel {
            what: "remove",
            address,
            source,
        }),
    }
}

const ENOENT: i32 = 2;
const EADDRNOTAVAIL: i32 = 99;
