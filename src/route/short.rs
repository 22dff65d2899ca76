//! Short strings held inline: the ids a request carries (the upstream's response id, the
//! provider's request id) and the model a route keeps, copied without an allocation.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use arrayvec::ArrayString;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A string held inline up to `N` bytes, on the heap beyond. Reads as a `str` (`Deref`),
/// compares, prints and serializes as one.
///
/// The default, [`ID_INLINE`] (40) bytes, covers the usual ids: `chatcmpl-…` (38), UUIDs and
/// `req_…` request ids (36), `cf-ray` (20), `msg_…` (28).
///
/// ```
/// use tower_ai_gateway::route::ShortString;
///
/// let id: ShortString = "chatcmpl-abc123".into();
/// assert_eq!(&*id, "chatcmpl-abc123");
/// assert!(id.is_inline());
/// assert_eq!(serde_json::to_string(&id)?, r#""chatcmpl-abc123""#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone)]
pub struct ShortString<const N: usize = ID_INLINE>(Repr<N>);

/// Bytes a [`ShortString`] holds inline by default. 40, so that an `Option<ShortString>` is 48
/// bytes: the meter keeps two in the allocation of each request, which must stay within glibc's
/// per-thread cache (1,032 bytes).
pub const ID_INLINE: usize = 40;

/// Where a [`ShortString`] keeps its bytes.
#[derive(Clone)]
enum Repr<const N: usize> {
    Inline(ArrayString<N>),
    Heap(Box<str>),
}

impl<const N: usize> ShortString<N> {
    /// The string.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline(s) => s,
            Repr::Heap(s) => s,
        }
    }

    /// Whether the string is held inline (it has at most `N` bytes), not on the heap.
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline(_))
    }
}

impl<const N: usize> From<&str> for ShortString<N> {
    fn from(s: &str) -> Self {
        ShortString(ArrayString::from(s).map_or_else(|_| Repr::Heap(s.into()), Repr::Inline))
    }
}

impl<const N: usize> From<String> for ShortString<N> {
    /// Copied inline when it fits (the `String` is dropped), else its allocation kept.
    fn from(s: String) -> Self {
        match ArrayString::from(s.as_str()) {
            Ok(a) => ShortString(Repr::Inline(a)),
            Err(_) => ShortString(Repr::Heap(s.into_boxed_str())),
        }
    }
}

impl<const N: usize> Deref for ShortString<N> {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> AsRef<str> for ShortString<N> {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> PartialEq for ShortString<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl<const N: usize> Eq for ShortString<N> {}

impl<const N: usize> PartialEq<str> for ShortString<N> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl<const N: usize> PartialEq<&str> for ShortString<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl<const N: usize> Hash for ShortString<N> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl<const N: usize> fmt::Debug for ShortString<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> fmt::Display for ShortString<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl<const N: usize> Serialize for ShortString<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de, const N: usize> Deserialize<'de> for ShortString<N> {
    /// From a JSON string: a short one (escaped or not) without an allocation.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const N: usize>;
        impl<const N: usize> Visitor<'_> for V<N> {
            type Value = ShortString<N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ShortString::from(v))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(ShortString::from(v))
            }
        }
        d.deserialize_str(V::<N>)
    }
}

/// Bytes a [`ViewStr`] holds inline: the usual model ids (`openai/gpt-4o-mini`,
/// `anthropic/claude-sonnet-4`); the size keeps the view's `model` at 40 bytes.
pub const VIEW_INLINE: usize = 32;

/// A string of a [`RequestView`](super::RequestView): borrowed from the body it was parsed from,
/// or owned by a view that outlives the body
/// ([`RequestView::into_owned`](super::RequestView::into_owned)),
/// inline up to [`VIEW_INLINE`] bytes. Reads as a `str` (`Deref`); prints as one.
#[derive(Clone)]
pub enum ViewStr<'a> {
    /// Borrowed from the body.
    Borrowed(&'a str),
    /// Owned (unescaped from the body, or copied for a view that outlives it).
    Owned(ShortString<VIEW_INLINE>),
}

impl ViewStr<'_> {
    /// The string, owned: no allocation up to [`VIEW_INLINE`] bytes.
    pub fn into_owned(self) -> ViewStr<'static> {
        match self {
            ViewStr::Borrowed(s) => ViewStr::Owned(ShortString::from(s)),
            ViewStr::Owned(s) => ViewStr::Owned(s),
        }
    }
}

impl<'a> From<&'a str> for ViewStr<'a> {
    fn from(s: &'a str) -> Self {
        ViewStr::Borrowed(s)
    }
}

impl<'a> From<Cow<'a, str>> for ViewStr<'a> {
    fn from(c: Cow<'a, str>) -> Self {
        match c {
            Cow::Borrowed(s) => ViewStr::Borrowed(s),
            Cow::Owned(s) => ViewStr::Owned(ShortString::from(s)),
        }
    }
}

impl Deref for ViewStr<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            ViewStr::Borrowed(s) => s,
            ViewStr::Owned(s) => s,
        }
    }
}

impl AsRef<str> for ViewStr<'_> {
    fn as_ref(&self) -> &str {
        self
    }
}

impl PartialEq for ViewStr<'_> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for ViewStr<'_> {}

impl PartialEq<str> for ViewStr<'_> {
    fn eq(&self, other: &str) -> bool {
        &**self == other
    }
}

impl PartialEq<&str> for ViewStr<'_> {
    fn eq(&self, other: &&str) -> bool {
        &**self == *other
    }
}

impl fmt::Debug for ViewStr<'_> {
    /// As the `str` (borrowed or owned alike: the parser's two paths compare their views so).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl fmt::Display for ViewStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type S8 = ShortString<8>;

    /// `s` is held inline or not, as `inline` says, and reads back as itself, from a `&str` and
    /// from a `String` alike.
    fn held(s: &str, inline: bool) {
        for short in [S8::from(s), S8::from(String::from(s))] {
            assert_eq!(short.is_inline(), inline, "{s:?}");
            assert_eq!(&*short, s);
        }
    }

    #[test]
    fn the_inline_capacity_is_the_boundary() {
        held("12345678", true);
        held("123456789", false);
        held("", true);
    }

    #[test]
    fn multi_byte_characters_at_the_boundary() {
        // 7 bytes then a 2-byte `é`: 9 bytes, over; 6 then `é`: 8, inline.
        held("1234567é", false);
        held("123456é", true);
        // A 4-byte character across the boundary.
        held("12345🦀", false);
    }

    #[test]
    fn compares_prints_and_serializes_as_the_str() {
        let (a, b) = (S8::from("abc"), S8::from(String::from("abc")));
        assert_eq!(a, b);
        assert_eq!(S8::from("123456789"), S8::from(String::from("123456789")));
        assert_ne!(a, S8::from("abd"));
        assert_eq!(format!("{a:?}"), r#""abc""#);
        assert_eq!(format!("{a:>5}"), "  abc");
        assert_eq!(serde_json::to_value(&a).unwrap(), "abc");
        assert_eq!(
            serde_json::to_string(&Some(S8::from("a\"long one"))).unwrap(),
            r#""a\"long one""#
        );
        let back: S8 = serde_json::from_str(r#""a\"b""#).unwrap();
        assert!(back.is_inline());
        assert_eq!(back, "a\"b");
        let long: S8 = serde_json::from_str(r#""0123456789""#).unwrap();
        assert_eq!(long, "0123456789");
        assert!(serde_json::from_str::<S8>("1").is_err());
    }

    #[test]
    fn a_view_string_owns_short_ones_inline() {
        let body = String::from("anthropic/claude-sonnet-4");
        let owned = ViewStr::from(body.as_str()).into_owned();
        assert!(matches!(&owned, ViewStr::Owned(s) if s.is_inline()));
        assert_eq!(owned, "anthropic/claude-sonnet-4");
        let long = "x".repeat(VIEW_INLINE + 1);
        let owned = ViewStr::from(long.as_str()).into_owned();
        assert!(matches!(&owned, ViewStr::Owned(s) if !s.is_inline()));
        assert_eq!(*owned, *long);
        // Borrowed and owned compare and print alike.
        assert_eq!(ViewStr::from("m"), ViewStr::from(Cow::Owned("m".into())));
        assert_eq!(format!("{:?}", ViewStr::from("m")), format!("{:?}", "m"));
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn sizes() {
        // The view's `model` grew by 16 bytes from a `Cow` (the route's test bounds the whole).
        assert_eq!(size_of::<Option<ViewStr<'static>>>(), 40);
        assert_eq!(size_of::<Option<ShortString>>(), 48);
    }
}
