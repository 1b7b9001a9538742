import Foundation
import LetheTensor

/// The transform T of the I2I task: which pixels are hidden and must be completed.
public struct MaskTransform: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case centerCrop = "center_crop"
        case outpaint
        case randomBox = "random_box"
    }

    public var kind: Kind
    /// Share of the image area hidden.
    public var ratio: Double

    public init(kind: Kind, ratio: Double) {
        precondition(ratio > 0 && ratio < 1, "mask ratio \(ratio) must be in (0, 1)")
        self.kind = kind
        self.ratio = ratio
    }

    /// Side of the hidden square (centre crop, random box) or of the visible square (outpaint).
    func side(_ size: Int) -> Int {
        let share = kind == .outpaint ? 1 - ratio : ratio
        return min(size - 1, max(1, Int((Double(size) * share.squareRoot()).rounded())))
    }

    /// Hidden pixels (true) of a `size` x `size` image, row-major. Only random_box draws from `rng`.
    public func hidden(size: Int, rng: inout Philox) -> [Bool] {
        let s = side(size)
        var out = [Bool](repeating: kind == .outpaint, count: size * size)
        let top: Int
        let left: Int
        switch kind {
        case .centerCrop, .outpaint:
            top = (size - s) / 2
            left = (size - s) / 2
        case .randomBox:
            top = rng.int(below: size - s + 1)
            left = rng.int(below: size - s + 1)
        }
        for y in top..<(top + s) { for x in left..<(left + s) { out[y * size + x] = kind != .outpaint } }
        return out
    }

    /// Patches (patch x patch, row-major) of which more than half the pixels are hidden: the patches
    /// an MAE must predict. The others are its visible input.
    public static func hiddenPatches(_ hidden: [Bool], size: Int, patch: Int) -> [Int] {
        let grid = size / patch
        return (0..<(grid * grid)).filter { p in
            let (py, px) = (p / grid, p % grid)
            var count = 0
            for y in 0..<patch {
                for x in 0..<patch where hidden[(py * patch + y) * size + px * patch + x] { count += 1 }
            }
            return 2 * count > patch * patch
        }
    }

    /// Patches (row-major, `size / patch` per side) holding at least one hidden pixel: the latent cells
    /// a hole touches.
    public static func touchedPatches(_ hidden: [Bool], size: Int, patch: Int) -> [Int] {
        let grid = size / patch
        return (0..<(grid * grid)).filter { p in
            let (py, px) = (p / grid, p % grid)
            return (0..<patch).contains { y in
                (0..<patch).contains { x in hidden[(py * patch + y) * size + px * patch + x] }
            }
        }
    }

    /// The masked images T(x): hidden pixels replaced by `fill`. `hidden` holds one mask per image
    /// (or one for all).
    public static func apply(_ images: Tensor<Float>, hidden: [[Bool]], fill: Float = 0) -> Tensor<Float> {
        let (n, h, w) = (images.shape[0], images.shape[2], images.shape[3])
        precondition(hidden.count == 1 || hidden.count == n, "one mask per image, or one for all")
        var keep = [Float](repeating: 1, count: n * h * w)
        var put = [Float](repeating: 0, count: n * h * w)
        for b in 0..<n {
            let m = hidden[hidden.count == 1 ? 0 : b]
            for i in 0..<(h * w) where m[i] {
                keep[b * h * w + i] = 0
                put[b * h * w + i] = fill
            }
        }
        let keepT = Tensor(keep, shape: [n, 1, h, w])
        let putT = Tensor(put, shape: [n, 1, h, w])
        return images * keepT + putT
    }
}

/// A mask drawn afresh for each unlearning step (spec: `unlearn.mask`): a share of the image drawn
/// uniformly from `ratio`, hidden as random `patch` x `patch` cells (MAGE's random token masking) or
/// as one square box at a random place (Palette's box masks).
public struct RandomMask: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case patches(size: Int)
        case box
    }
    public var kind: Kind
    public var ratio: ClosedRange<Double>

    public init(kind: Kind, ratio: ClosedRange<Double>) {
        precondition(ratio.lowerBound > 0 && ratio.upperBound < 1, "mask ratio \(ratio) must be in (0, 1)")
        self.kind = kind
        self.ratio = ratio
    }

    /// Hidden pixels (true) of a `size` x `size` image, row-major; never none and never all.
    public func hidden(size: Int, rng: inout Philox) -> [Bool] {
        let share = ratio.lowerBound + (ratio.upperBound - ratio.lowerBound) * rng.uniform()
        var out = [Bool](repeating: false, count: size * size)
        switch kind {
        case .patches(let p):
            let grid = (size + p - 1) / p
            let cells = grid * grid
            let k = min(cells - 1, max(1, Int((Double(cells) * share).rounded())))
            for cell in rng.permutation(cells).prefix(k) {
                let (cy, cx) = (cell / grid, cell % grid)
                for y in (cy * p)..<min(size, cy * p + p) {
                    for x in (cx * p)..<min(size, cx * p + p) { out[y * size + x] = true }
                }
            }
            if cells == 1 { out[0] = true }
        case .box:
            let s = min(size - 1, max(1, Int((Double(size) * share.squareRoot()).rounded())))
            let top = rng.int(below: size - s + 1)
            let left = rng.int(below: size - s + 1)
            for y in top..<(top + s) { for x in left..<(left + s) { out[y * size + x] = true } }
        }
        return out
    }
}

/// Whether a square box of side `side` somewhere in a `size` image can touch every `cell` x `cell`
/// block: it must reach from the first block row to the last (and so for columns).
func boxCanTouchEveryCell(side s: Int, size: Int, cell: Int) -> Bool {
    let last = (size - 1) / cell
    return (0...(size - s)).contains { o in o / cell == 0 && (o + s - 1) / cell == last }
}

extension MaskTransform {
    /// Whether some mask this transform draws touches every `cell` x `cell` block of a `size` image
    /// (a token model would then see no token at all).
    public func canTouchEveryCell(size: Int, cell: Int) -> Bool {
        switch kind {
        case .randomBox: return boxCanTouchEveryCell(side: side(size), size: size, cell: cell)
        case .centerCrop, .outpaint:
            var unused = Philox(seed: 0)
            let blocks = ((size + cell - 1) / cell) * ((size + cell - 1) / cell)
            return MaskTransform.touchedPatches(hidden(size: size, rng: &unused), size: size, patch: cell).count
                == blocks
        }
    }
}

extension RandomMask {
    /// Whether some mask this draws touches every `cell` x `cell` block of a `size` image. Random
    /// patches leave at least one patch whole, which holds a whole block when the patch side is a
    /// multiple of `cell`.
    public func canTouchEveryCell(size: Int, cell: Int) -> Bool {
        switch kind {
        case .patches(let p): return p % cell != 0
        case .box:
            let s = min(size - 1, max(1, Int((Double(size) * ratio.upperBound.squareRoot()).rounded())))
            return boxCanTouchEveryCell(side: s, size: size, cell: cell)
        }
    }
}
