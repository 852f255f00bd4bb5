//! Session state as the packets show it, and how long an idle session lives.
//! The state is one byte of the session entry.

use crate::session::Dir;
use crate::shared::Timeouts;
use crate::wire::{ipv4::proto, tcp::flags};

/// TCP states (low three bits of the state byte).
pub mod tcp {
    pub const SYN_SENT: u8 = 0;
    pub const SYN_RECV: u8 = 1;
    pub const ESTABLISHED: u8 = 2;
    pub const FIN_WAIT: u8 = 3;
    /// Closed by FINs from both sides or by the client's RST.
    pub const CLOSED: u8 = 4;
    /// Closed by the member's RST.
    pub const CLOSED_BY_MEMBER: u8 = 5;
    pub const MASK: u8 = 0x07;
    /// A FIN was seen from the client / from the member.
    pub const FIN_CLIENT: u8 = 0x08;
    pub const FIN_MEMBER: u8 = 0x10;
}

/// Flags of the state byte that TCP transitions keep.
pub mod flag {
    /// The session holds a SNAT port of its worker (returned when it ends).
    pub const SNAT_PORT: u8 = 0x20;
    /// The member went down and its pool resets sessions: the next packet of
    /// the session (or the client's answer to the switch's ACK probe) is
    /// answered with a RST to both ends, carrying that packet's sequence numbers.
    pub const RESET_PENDING: u8 = 0x40;
    /// The session has shown that a real client is behind it (see
    /// `flood`): in the NAT modes the client acknowledged the member's
    /// SYN-ACK, in the DSR modes the client kept the flow going for
    /// `CONFIRM_AFTER_MS`; a UDP session, that the member answered or that
    /// it lasted that long. Until
    /// then a TCP session may be evicted for a new one.
    pub const CONFIRMED: u8 = 0x80;
    pub const KEEP: u8 = SNAT_PORT | RESET_PENDING | CONFIRMED;
}

/// How long a flow whose member side the switch cannot see (DSR, or UDP
/// nobody answers) must go on before it counts as confirmed: time is the
/// only evidence it can ask of a blind sender.
pub const CONFIRM_AFTER_MS: u32 = 1_000;

/// How far past the member's initial sequence number the client's ACK may
/// be and still acknowledge its SYN-ACK (data the member sent with or right
/// after it, as TCP Fast Open does); a blind guess hits it once in 65,536.
pub const HANDSHAKE_WINDOW: u32 = 1 << 16;

/// Whether a TCP segment may open a session: SYN without ACK or RST.
#[inline]
pub fn opens_tcp(f: u8) -> bool {
    f & (flags::SYN | flags::ACK | flags::RST) == flags::SYN
}

/// The state byte of a new session.
#[inline]
pub fn initial(_proto: u8) -> u8 {
    tcp::SYN_SENT
}

#[inline]
fn is_closed(st: u8) -> bool {
    st >= tcp::CLOSED
}

/// The state after a packet with TCP `f` flags travelling in `dir`;
/// `acked`: the packet acknowledges the member's SYN-ACK (its ACK number is
/// within [`HANDSHAKE_WINDOW`] of the member's sequence number plus one).
/// Only such an ACK completes the handshake and confirms the session.
///
/// A RST closes the session (the `tcp_close` timeout), but the switch does
/// not track sequence numbers, so it cannot tell an in-window RST from a
/// forged or stale one: if its sender then goes on with ordinary segments,
/// it was not a RST its receiver took, and the session is open again.
#[inline]
pub fn update_tcp(state: u8, dir: Dir, f: u8, acked: bool) -> u8 {
    let mut keep = state & flag::KEEP;
    let mut fins = state & (tcp::FIN_CLIENT | tcp::FIN_MEMBER);
    if f & flags::RST != 0 {
        let closed = match dir {
            Dir::Reverse => tcp::CLOSED_BY_MEMBER,
            Dir::Forward => tcp::CLOSED,
        };
        return closed | fins | keep;
    }
    let mut st = state & tcp::MASK;
    if is_closed(st) && revives(state, dir, f) {
        st = if fins != 0 {
            tcp::FIN_WAIT
        } else {
            tcp::ESTABLISHED
        };
    }
    match (st, dir) {
        (tcp::SYN_SENT, Dir::Reverse)
            if f & (flags::SYN | flags::ACK) == flags::SYN | flags::ACK =>
        {
            st = tcp::SYN_RECV
        }
        (tcp::SYN_RECV, Dir::Forward) if f & (flags::SYN | flags::ACK) == flags::ACK && acked => {
            st = tcp::ESTABLISHED;
            keep |= flag::CONFIRMED;
        }
        _ => {}
    }
    if f & flags::FIN != 0 {
        fins |= match dir {
            Dir::Forward => tcp::FIN_CLIENT,
            Dir::Reverse => tcp::FIN_MEMBER,
        };
        st = if fins == tcp::FIN_CLIENT | tcp::FIN_MEMBER {
            tcp::CLOSED
        } else if !is_closed(st) {
            tcp::FIN_WAIT
        } else {
            st
        };
    }
    st | fins | keep
}

/// Whether a segment shows that the RST which closed a session was not
/// taken: it comes from the RST's own sender, is a plain ACK segment, and
/// the session was not closed by FINs from both sides.
#[inline]
fn revives(state: u8, dir: Dir, f: u8) -> bool {
    let both_fins = tcp::FIN_CLIENT | tcp::FIN_MEMBER;
    let rst_dir = if state & tcp::MASK == tcp::CLOSED_BY_MEMBER {
        Dir::Reverse
    } else {
        Dir::Forward
    };
    state & both_fins != both_fins
        && dir == rst_dir
        && f & (flags::RST | flags::SYN | flags::FIN) == 0
        && f & flags::ACK != 0
}

/// Whether a session counts as closing for least connections (a FIN or RST
/// was seen): IPVS's inactive connections.
#[inline]
pub fn closing(state: u8, protocol: u8) -> bool {
    protocol == proto::TCP && state & tcp::MASK >= tcp::FIN_WAIT
}

/// The state after a client packet in a direct-server-return mode, where the
/// switch never sees the member's side: the client's ACK after its SYN means
/// established; a client FIN half-closes (the member may still be sending,
/// so the session lives until the `tcp_fin` timeout); a RST closes. Whether
/// the session is confirmed is the caller's to decide (`CONFIRM_AFTER_MS`).
#[inline]
pub fn update_tcp_one_way(state: u8, f: u8) -> u8 {
    let keep = state & flag::KEEP;
    let st = state & tcp::MASK;
    if f & flags::RST != 0 {
        return tcp::CLOSED | (state & tcp::FIN_CLIENT) | keep;
    }
    if is_closed(st) && revives(state, Dir::Forward, f) {
        return (if state & tcp::FIN_CLIENT != 0 {
            tcp::FIN_WAIT
        } else {
            tcp::ESTABLISHED
        }) | (state & tcp::FIN_CLIENT)
            | keep;
    }
    if f & flags::FIN != 0 {
        return tcp::FIN_WAIT | tcp::FIN_CLIENT | keep;
    }
    if st == tcp::SYN_SENT && f & (flags::SYN | flags::ACK) == flags::ACK {
        return tcp::ESTABLISHED | keep;
    }
    state
}

/// Whether a new SYN from the client may replace this session (the client
/// reuses its port after the old connection closed).
#[inline]
pub fn reusable(state: u8) -> bool {
    state & tcp::MASK >= tcp::FIN_WAIT
}

/// Idle timeout of a session in milliseconds. `idle` overrides the
/// established-TCP and UDP values (per virtual server).
#[inline]
pub fn timeout_ms(state: u8, protocol: u8, t: &Timeouts, idle: Option<u32>) -> u32 {
    if state & flag::RESET_PENDING != 0 {
        return t.tcp_close;
    }
    match protocol {
        proto::TCP => match state & tcp::MASK {
            tcp::SYN_SENT | tcp::SYN_RECV => t.tcp_syn,
            tcp::ESTABLISHED => idle.unwrap_or(t.tcp_established),
            tcp::FIN_WAIT => t.tcp_fin,
            _ => t.tcp_close,
        },
        proto::UDP => idle.unwrap_or(t.udp),
        _ => t.icmp,
    }
}

/// Whether a session is unconfirmed (the flood defence's "half-open"): a
/// TCP session that has not shown a real client behind it (see
/// [`flag::CONFIRMED`]), whatever FIN or RST it saw. A flood of spoofed
/// SYNs, or of SYN and blind ACK pairs, leaves only such sessions.
#[inline]
pub fn embryonic(state: u8, protocol: u8) -> bool {
    protocol == proto::TCP && state & flag::CONFIRMED == 0
}

/// A name for `sluicectl sessions`.
pub fn state_name(state: u8, protocol: u8) -> &'static str {
    match protocol {
        proto::TCP => match state & tcp::MASK {
            tcp::SYN_SENT => "syn_sent",
            tcp::SYN_RECV => "syn_recv",
            tcp::ESTABLISHED => "established",
            tcp::FIN_WAIT => "fin_wait",
            _ => "closed",
        },
        proto::UDP => "udp",
        _ => "icmp",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flags::*;

    const C: u8 = flag::CONFIRMED;

    #[test]
    fn handshake_to_close() {
        let mut s = initial(proto::TCP);
        assert!(opens_tcp(SYN));
        assert!(!opens_tcp(SYN | ACK));
        assert!(!opens_tcp(ACK));
        s = update_tcp(s, Dir::Forward, SYN, false);
        assert_eq!(s, tcp::SYN_SENT);
        s = update_tcp(s, Dir::Reverse, SYN | ACK, false);
        assert_eq!(s, tcp::SYN_RECV);
        s = update_tcp(s, Dir::Forward, ACK, true);
        assert_eq!(s, tcp::ESTABLISHED | C);
        s = update_tcp(s, Dir::Forward, ACK | PSH, false);
        assert_eq!(s, tcp::ESTABLISHED | C);
        assert!(!reusable(s));
        s = update_tcp(s, Dir::Reverse, FIN | ACK, false);
        assert_eq!(s, tcp::FIN_WAIT | tcp::FIN_MEMBER | C);
        assert!(reusable(s));
        s = update_tcp(s, Dir::Forward, FIN | ACK, false);
        assert_eq!(s & tcp::MASK, tcp::CLOSED);
        assert_eq!(
            update_tcp(tcp::ESTABLISHED, Dir::Reverse, RST, false) & tcp::MASK,
            tcp::CLOSED_BY_MEMBER
        );
    }

    #[test]
    fn only_an_ack_of_the_syn_ack_confirms() {
        let syn_recv = tcp::SYN_RECV | flag::SNAT_PORT;
        // A blind ACK (not acknowledging the member's SYN-ACK) changes nothing.
        assert_eq!(update_tcp(syn_recv, Dir::Forward, ACK, false), syn_recv);
        assert!(embryonic(syn_recv, proto::TCP));
        // Nor does an ACK before the member answered.
        assert_eq!(
            update_tcp(tcp::SYN_SENT, Dir::Forward, ACK, true),
            tcp::SYN_SENT
        );
        // FIN or RST leave an unconfirmed session unconfirmed.
        let fin = update_tcp(syn_recv, Dir::Forward, FIN | ACK, false);
        assert_eq!(fin, tcp::FIN_WAIT | tcp::FIN_CLIENT | flag::SNAT_PORT);
        assert!(embryonic(fin, proto::TCP));
        let rst = update_tcp(syn_recv, Dir::Reverse, RST, false);
        assert!(embryonic(rst, proto::TCP) && reusable(rst));
        // Revived by its sender, still unconfirmed.
        let revived = update_tcp(rst, Dir::Reverse, ACK, false);
        assert_eq!(revived, tcp::ESTABLISHED | flag::SNAT_PORT);
        assert!(embryonic(revived, proto::TCP));
        assert!(!embryonic(tcp::ESTABLISHED | C, proto::TCP));
        assert!(!embryonic(0, proto::UDP), "only TCP sessions are half-open");
    }

    #[test]
    fn rst_not_taken_reopens_only_from_its_sender() {
        let est = tcp::ESTABLISHED | flag::SNAT_PORT | C;
        let by_member = update_tcp(est, Dir::Reverse, RST | ACK, false);
        assert_eq!(by_member, tcp::CLOSED_BY_MEMBER | flag::SNAT_PORT | C);
        assert!(closing(by_member, proto::TCP));
        // The client's packets in flight do not revive it; the member's do.
        assert_eq!(update_tcp(by_member, Dir::Forward, ACK, false), by_member);
        assert_eq!(
            update_tcp(by_member, Dir::Reverse, ACK | PSH, false),
            tcp::ESTABLISHED | flag::SNAT_PORT | C
        );
        let by_client = update_tcp(est, Dir::Forward, RST, false);
        assert_eq!(update_tcp(by_client, Dir::Reverse, ACK, false), by_client);
        assert_eq!(
            update_tcp(by_client, Dir::Forward, ACK, false) & tcp::MASK,
            tcp::ESTABLISHED
        );
        // Closed by FINs from both sides: nothing revives it.
        let fins = tcp::CLOSED | tcp::FIN_CLIENT | tcp::FIN_MEMBER;
        assert_eq!(update_tcp(fins, Dir::Forward, ACK, false), fins);
        // One FIN, then a RST not taken: back to closing, not established.
        let half = update_tcp(tcp::FIN_WAIT | tcp::FIN_CLIENT, Dir::Forward, RST, false);
        assert_eq!(
            update_tcp(half, Dir::Forward, ACK, false) & tcp::MASK,
            tcp::FIN_WAIT
        );
        assert!(!closing(tcp::ESTABLISHED, proto::TCP) && !closing(tcp::CLOSED, proto::UDP));
    }

    #[test]
    fn one_way_and_kept_flags() {
        let mut s = initial(proto::TCP) | flag::SNAT_PORT;
        s = update_tcp_one_way(s, SYN);
        assert_eq!(s, tcp::SYN_SENT | flag::SNAT_PORT);
        s = update_tcp_one_way(s, ACK);
        assert_eq!(s, tcp::ESTABLISHED | flag::SNAT_PORT);
        assert!(
            embryonic(s, proto::TCP),
            "one-way: confirmed by time, not here"
        );
        s |= C;
        s = update_tcp_one_way(s, ACK | PSH);
        assert_eq!(s, tcp::ESTABLISHED | flag::SNAT_PORT | C);
        assert_eq!(
            update_tcp_one_way(s, FIN | ACK),
            tcp::FIN_WAIT | tcp::FIN_CLIENT | flag::SNAT_PORT | C,
            "a client FIN half-closes: the member may still be sending"
        );
        let closed = update_tcp_one_way(s, RST);
        assert_eq!(closed & tcp::MASK, tcp::CLOSED);
        assert_eq!(
            update_tcp_one_way(closed, ACK),
            tcp::ESTABLISHED | flag::SNAT_PORT | C,
            "the client goes on: its RST was not taken"
        );
        let two_way = update_tcp(
            tcp::SYN_SENT | flag::SNAT_PORT,
            Dir::Reverse,
            SYN | ACK,
            false,
        );
        assert_eq!(two_way, tcp::SYN_RECV | flag::SNAT_PORT);
    }

    #[test]
    fn timeouts_by_state() {
        let t = Timeouts {
            tcp_syn: 1,
            tcp_established: 2,
            tcp_fin: 3,
            tcp_close: 4,
            udp: 5,
            icmp: 6,
        };
        assert_eq!(timeout_ms(tcp::SYN_RECV, proto::TCP, &t, None), 1);
        assert_eq!(timeout_ms(tcp::ESTABLISHED, proto::TCP, &t, None), 2);
        assert_eq!(timeout_ms(tcp::ESTABLISHED, proto::TCP, &t, Some(9)), 9);
        assert_eq!(
            timeout_ms(tcp::FIN_WAIT | tcp::FIN_CLIENT, proto::TCP, &t, Some(9)),
            3
        );
        assert_eq!(timeout_ms(tcp::CLOSED, proto::TCP, &t, None), 4);
        assert_eq!(timeout_ms(0, proto::UDP, &t, None), 5);
        assert_eq!(timeout_ms(0, proto::UDP, &t, Some(7)), 7);
        assert_eq!(timeout_ms(0, proto::ICMP, &t, None), 6);
    }
}
