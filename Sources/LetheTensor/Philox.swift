import Foundation

/// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"), the counter-based
/// generator PyTorch and JAX use on accelerators. Every random draw in Lethe comes from one of these,
/// seeded from the run spec and passed explicitly; `split` derives independent named streams
/// (init, masks, noise, shuffles) so adding a draw in one place never shifts another.
public struct Philox: Sendable {
    private var key: (UInt32, UInt32)
    private var counter: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
    private var block: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
    private var used = 4
    private var spareNormal: Double?

    public init(seed: UInt64) {
        key = (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32))
    }

    /// A stream's complete position (key, counter, the block being consumed, a spare normal), so a
    /// run that resumes draws exactly the numbers an uninterrupted one would.
    public struct State: Sendable, Equatable {
        /// key (2 words), counter (4), block (4), then the number of block words used.
        public var words: [UInt32]
        /// The bit pattern of the Box-Muller value kept for the next `normal()`, if any.
        public var spareNormal: UInt64?

        public init(words: [UInt32], spareNormal: UInt64?) {
            self.words = words
            self.spareNormal = spareNormal
        }
    }

    public var state: State {
        State(
            words: [
                key.0, key.1, counter.0, counter.1, counter.2, counter.3, block.0, block.1, block.2, block.3,
                UInt32(used),
            ], spareNormal: spareNormal?.bitPattern)
    }

    /// The stream at `state`; nil when the state is malformed.
    public init?(state: State) {
        let w = state.words
        guard w.count == 11, w[10] <= 4 else { return nil }
        key = (w[0], w[1])
        counter = (w[2], w[3], w[4], w[5])
        block = (w[6], w[7], w[8], w[9])
        used = Int(w[10])
        spareNormal = state.spareNormal.map(Double.init(bitPattern:))
    }

    /// An independent stream named by `name`: same seed and name, same numbers.
    public func split(_ name: String) -> Philox {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a of the name
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return split(h)
    }

    public func split(_ stream: UInt64) -> Philox {
        let r = Philox.rounds(
            (UInt32(truncatingIfNeeded: stream), UInt32(truncatingIfNeeded: stream >> 32), 0x5EED, 0x51_17), key: key)
        return Philox(seed: UInt64(r.0) | UInt64(r.1) << 32 ^ UInt64(r.2) << 16 ^ UInt64(r.3) << 48)
    }

    static func rounds(_ c: (UInt32, UInt32, UInt32, UInt32), key k: (UInt32, UInt32)) -> (
        UInt32, UInt32, UInt32, UInt32
    ) {
        var c = c
        var k = k
        for _ in 0..<10 {
            let p0 = UInt64(0xD251_1F53) * UInt64(c.0)
            let p1 = UInt64(0xCD9E_8D57) * UInt64(c.2)
            c = (
                UInt32(truncatingIfNeeded: p1 >> 32) ^ c.1 ^ k.0, UInt32(truncatingIfNeeded: p1),
                UInt32(truncatingIfNeeded: p0 >> 32) ^ c.3 ^ k.1, UInt32(truncatingIfNeeded: p0)
            )
            k = (k.0 &+ 0x9E37_79B9, k.1 &+ 0xBB67_AE85)
        }
        return c
    }

    public mutating func next() -> UInt32 {
        if used == 4 {
            block = Philox.rounds(counter, key: key)
            counter.0 &+= 1
            if counter.0 == 0 { counter.1 &+= 1 }
            used = 0
        }
        defer { used += 1 }
        switch used {
        case 0: return block.0
        case 1: return block.1
        case 2: return block.2
        default: return block.3
        }
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func uniform() -> Double {
        let hi = UInt64(next() >> 5)
        let lo = UInt64(next() >> 6)
        return Double(hi << 26 | lo) * 0x1.0p-53
    }

    /// Standard normal by Box-Muller (both values of each pair are used).
    public mutating func normal() -> Double {
        if let z = spareNormal {
            spareNormal = nil
            return z
        }
        var u = uniform()
        while u == 0 { u = uniform() }
        let v = uniform()
        let r = (-2 * Foundation.log(u)).squareRoot()
        spareNormal = r * Foundation.sin(2 * .pi * v)
        return r * Foundation.cos(2 * .pi * v)
    }

    /// Uniform integer in 0..<n, without modulo bias.
    public mutating func int(below n: Int) -> Int {
        precondition(n > 0)
        let bound = UInt64(n)
        let limit = UInt64.max - UInt64.max % bound
        while true {
            let x = UInt64(next()) << 32 | UInt64(next())
            if x < limit { return Int(x % bound) }
        }
    }

    /// A uniformly random permutation of 0..<n (Fisher-Yates).
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        for i in stride(from: n - 1, to: 0, by: -1) { p.swapAt(i, int(below: i + 1)) }
        return p
    }
}

extension Tensor {
    /// Normal(mean, std) values from `rng`.
    @_specialize(where T == Float)
    public static func randn(_ shape: [Int], mean: T = 0, std: T = 1, rng: inout Philox, requiresGrad: Bool = false)
        -> Tensor
    {
        Tensor(
            (0..<shape.reduce(1, *)).map { _ in mean + std * T(rng.normal()) }, shape: shape, requiresGrad: requiresGrad
        )
    }

    /// Uniform(lo, hi) values from `rng`.
    @_specialize(where T == Float)
    public static func uniform(_ shape: [Int], _ lo: T, _ hi: T, rng: inout Philox, requiresGrad: Bool = false)
        -> Tensor
    {
        Tensor(
            (0..<shape.reduce(1, *)).map { _ in lo + (hi - lo) * T(rng.uniform()) }, shape: shape,
            requiresGrad: requiresGrad)
    }

    /// Inverted dropout: zeroes a share `p` of the values and scales the rest by 1/(1-p).
    @_specialize(where T == Float)
    public func dropout(_ p: Double, rng: inout Philox) -> Tensor {
        guard p > 0 else { return self }
        let scale = T(1 / (1 - p))
        let mask = Tensor((0..<count).map { _ in rng.uniform() >= p ? scale : 0 }, shape: shape)
        return self * mask
    }
}

/// A stream saved and restored exactly (`{"words": [...], "spare_normal": "<hex bits>"}`).
extension Philox: Codable {
    private enum CodingKeys: String, CodingKey {
        case words
        case spareNormal = "spare_normal"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let spare = try c.decodeIfPresent(String.self, forKey: .spareNormal).flatMap { UInt64($0, radix: 16) }
        guard let stream = Philox(state: State(words: try c.decode([UInt32].self, forKey: .words), spareNormal: spare))
        else {
            throw DecodingError.dataCorruptedError(
                forKey: .words, in: c, debugDescription: "not the state of a Philox stream")
        }
        self = stream
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(state.words, forKey: .words)
        // The spare normal as its bit pattern in hex: exact whatever the JSON number formatting.
        try c.encodeIfPresent(state.spareNormal.map { String($0, radix: 16) }, forKey: .spareNormal)
    }
}
