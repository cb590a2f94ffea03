//! The call layer: SIP dialogs, the media table that ties packets to calls, and codecs.
//!
//! [`dialog`] follows every call by its Call-ID, [`media`] says which call a media packet
//! belongs to, [`codec`] names what a payload type carries. Nothing here decodes frames.

pub mod codec;
pub mod dialog;
mod flows;
pub mod media;
