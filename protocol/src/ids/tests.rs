use super::*;

/// Vectors computed independently (Python: byte-swap, base62 `0-9a-zA-Z`, left-pad).
const VECTORS: &[(u64, u128, &str)] = &[
    (0, 0, "inv_1000000000000000000000000000000000"),
    (1, 1, "inv_105k1wlNFHb201SZwviYzes2mjOamuMJWw"),
    (0x0123_4567_89ab_cdef, 0x0123_4567_89ab_cdef_0011_2233_4455_6677, "inv_1kAt0t9pq7gB3DiQTUN2BrjCLWRdNa5AhX"),
    (u64::MAX, u128::MAX, "inv_1lYGhA16ahyf7N42dgm5tFLK9N8MT7fHC7"),
];

#[test]
fn invocation_id_known_vectors() {
    for &(pk, uuid, s) in VECTORS {
        let id = InvocationId::new(pk, uuid);
        assert_eq!(id.to_string(), s);
        assert_eq!(s.len(), InvocationId::STRING_LEN);
        assert_eq!(s.parse::<InvocationId>(), Ok(id));
    }
}

#[test]
fn invocation_id_round_trips() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..2000 {
        // splitmix-style stepping: spreads values over the whole range.
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let pk = x ^ (x >> 31);
        let uuid = (u128::from(x.rotate_left(17)) << 64) | u128::from(pk.wrapping_mul(31));
        let id = InvocationId::new(pk, uuid);
        let s = id.to_string();
        assert_eq!(s.len(), InvocationId::STRING_LEN);
        assert_eq!(s.parse::<InvocationId>(), Ok(id));
        assert_eq!(InvocationId::from_bytes(&id.to_bytes()), Ok(id));
    }
}

#[test]
fn raw_layout_is_big_endian_partition_key_then_uuid() {
    let id = InvocationId::new(0x0102_0304_0506_0708, 0x1112_1314_1516_1718_191A_1B1C_1D1E_1F20);
    let raw = id.to_bytes();
    assert_eq!(&raw[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(raw[8], 0x11);
    assert_eq!(raw[23], 0x20);
}

#[test]
fn invocation_id_rejects_garbage() {
    assert!(matches!("".parse::<InvocationId>(), Err(IdError::WrongPrefix { .. })));
    assert!(matches!("sign_1abc".parse::<InvocationId>(), Err(IdError::WrongPrefix { .. })));
    assert!(matches!("inv_1abc".parse::<InvocationId>(), Err(IdError::WrongLength { .. })));
    let too_long = format!("{}0", VECTORS[1].2);
    assert!(matches!(too_long.parse::<InvocationId>(), Err(IdError::WrongLength { .. })));
    let bad_char = VECTORS[1].2.replace('k', "!");
    assert!(matches!(bad_char.parse::<InvocationId>(), Err(IdError::InvalidCharacter('!'))));
    // Multi-byte characters must not cause a slicing panic.
    let unicode = format!("inv_1{}a", "é".repeat(16)); // 33 bytes, like a valid body
    assert!(unicode.parse::<InvocationId>().is_err());
    // 11 base62 digits can exceed u64::MAX.
    let overflow = format!("inv_1{}{}", "Z".repeat(11), "0".repeat(22));
    assert_eq!(overflow.parse::<InvocationId>(), Err(IdError::Overflow));
    let overflow = format!("inv_1{}{}", "0".repeat(11), "Z".repeat(22));
    assert_eq!(overflow.parse::<InvocationId>(), Err(IdError::Overflow));
    assert!(matches!(InvocationId::from_bytes(&[0; 23]), Err(IdError::WrongLength { .. })));
    assert!(matches!(InvocationId::from_bytes(&[0; 25]), Err(IdError::WrongLength { .. })));
}

#[test]
fn awakeable_id_known_vectors() {
    // 24 zero bytes + u32 17: 36 'A's then base64url of [0x00, 0x00, 0x00, 0x11] tail.
    let zero = AwakeableId::new(InvocationId::new(0, 0), FIRST_AWAKEABLE_SIGNAL_INDEX);
    let s = zero.to_string();
    assert_eq!(s, format!("sign_1{}EQ", "A".repeat(36)));
    assert_eq!(s.len(), AwakeableId::STRING_LEN);

    let id = InvocationId::new(0x0123_4567_89ab_cdef, 0x0123_4567_89ab_cdef_0011_2233_4455_6677);
    let awk = AwakeableId::new(id, 17);
    assert_eq!(awk.to_string(), "sign_1ASNFZ4mrze8BI0VniavN7wARIjNEVWZ3AAAAEQ");
    assert_eq!("sign_1ASNFZ4mrze8BI0VniavN7wARIjNEVWZ3AAAAEQ".parse::<AwakeableId>(), Ok(awk));
    // Padding is optional on input.
    assert_eq!("sign_1ASNFZ4mrze8BI0VniavN7wARIjNEVWZ3AAAAEQ==".parse::<AwakeableId>(), Ok(awk));
}

#[test]
fn awakeable_id_round_trips() {
    for (i, &(pk, uuid, _)) in VECTORS.iter().enumerate() {
        for idx in [CANCEL_SIGNAL_INDEX, 17, 18, 1000 + i as u32, u32::MAX] {
            let awk = AwakeableId::new(InvocationId::new(pk, uuid), idx);
            let s = awk.to_string();
            assert_eq!(s.len(), AwakeableId::STRING_LEN);
            assert!(s[6..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert_eq!(s.parse::<AwakeableId>(), Ok(awk));
        }
    }
}

#[test]
fn awakeable_id_rejects_garbage() {
    assert_eq!("prom_1ASNFZ4mrze8BI0VniavN7wARIjNEVWZ3AAAAEQ".parse::<AwakeableId>(), Err(IdError::LegacyAwakeable));
    assert_eq!("awk_1abc".parse::<AwakeableId>(), Err(IdError::LegacyAwakeable));
    assert!(matches!("inv_1abc".parse::<AwakeableId>(), Err(IdError::WrongPrefix { .. })));
    assert!(matches!("sign_1***".parse::<AwakeableId>(), Err(IdError::Base64(_))));
    // Standard-alphabet characters are not base64url.
    assert!(matches!("sign_1ASNFZ4mrze8BI0VniavN7wARIjNEVWZ3AAAA+Q".parse::<AwakeableId>(), Err(IdError::Base64(_))));
    assert!(matches!("sign_1AAAA".parse::<AwakeableId>(), Err(IdError::WrongLength { actual: 3, .. })));
    assert!(matches!("sign_1".parse::<AwakeableId>(), Err(IdError::WrongLength { actual: 0, .. })));
}
