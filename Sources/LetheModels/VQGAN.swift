import Foundation
import LetheTensor

/// Hyper-parameters of a VQ-GAN encoder, quantiser and decoder (spec: `model.vq_autoencoder`, and
/// MAGE's tokenizer, `model.mage.tokenizer`).
public struct VQGANConfig: Sendable, Equatable {
    public var imageSize = 32, channels = 1
    public var levels = [32, 64]
    public var codebookSize = 256, codebookDim = 32
    public var commitment = 0.25
    public var groups = 8
    public init() {}
    public var latentSize: Int { imageSize >> levels.count }
}

/// conv 3x3 -> GroupNorm -> SiLU, then (optionally) a stride-2 conv that halves the size.
public final class ConvStage<T: TensorScalar>: Module<T> {
    public let conv: Conv2d<T>
    public let norm: GroupNorm<T>
    public let resample: Conv2d<T>?
    let upsample: Bool

    public init(_ inC: Int, _ outC: Int, groups: Int, down: Bool = false, up: Bool = false, rng: inout Philox) {
        upsample = up
        conv = Conv2d(inC, outC, kernel: 3, padding: 1, rng: &rng)
        norm = GroupNorm(groups: groups, channels: outC)
        resample = down ? Conv2d(outC, outC, kernel: 3, stride: 2, padding: 1, rng: &rng) : nil
        super.init()
        register("conv", conv)
        register("norm", norm)
        if let r = resample { register("downsample", r) }
    }

    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> {
        let h = norm(conv(upsample ? x.upsampleNearest2x() : x)).silu()
        return resample.map { $0(h) } ?? h
    }
}

/// The encoder E: image -> pre-quantisation latent z_e, (B, codebook_dim, h, w).
public final class VQEncoder<T: TensorScalar>: Module<T> {
    public let convIn: Conv2d<T>
    public let down: ModuleList<T, ConvStage<T>>
    public let convOut: Conv2d<T>

    init(_ c: VQGANConfig, rng: inout Philox) {
        convIn = Conv2d(c.channels, c.levels[0], kernel: 3, padding: 1, rng: &rng)
        var stages: [ConvStage<T>] = []
        var inC = c.levels[0]
        for width in c.levels {
            stages.append(ConvStage(inC, width, groups: c.groups, down: true, rng: &rng))
            inC = width
        }
        down = ModuleList(stages)
        convOut = Conv2d(inC, c.codebookDim, kernel: 1, rng: &rng)
        super.init()
        register("conv_in", convIn)
        register("down", down)
        register("conv_out", convOut)
    }

    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> {
        var h = convIn(x)
        for stage in down.items { h = stage(h) }
        return convOut(h)
    }
}

/// The decoder D: quantised latent -> image.
public final class VQDecoder<T: TensorScalar>: Module<T> {
    public let convIn: Conv2d<T>
    public let up: ModuleList<T, ConvStage<T>>
    public let convOut: Conv2d<T>

    init(_ c: VQGANConfig, rng: inout Philox) {
        let widths = Array(c.levels.reversed())
        convIn = Conv2d(c.codebookDim, widths[0], kernel: 3, padding: 1, rng: &rng)
        var stages: [ConvStage<T>] = []
        var inC = widths[0]
        for width in widths {
            stages.append(ConvStage(inC, width, groups: c.groups, up: true, rng: &rng))
            inC = width
        }
        up = ModuleList(stages)
        convOut = Conv2d(inC, c.channels, kernel: 3, padding: 1, rng: &rng)
        super.init()
        register("conv_in", convIn)
        register("up", up)
        register("conv_out", convOut)
    }

    public func callAsFunction(_ z: Tensor<T>) -> Tensor<T> {
        var h = convIn(z)
        for stage in up.items { h = stage(h) }
        return convOut(h)
    }
}

/// The vector quantiser: a codebook (`quantize.embedding.weight`, as in taming-transformers).
public final class VectorQuantizer<T: TensorScalar>: Module<T> {
    public let embedding: Embedding<T>
    public let commitment: T
    /// Whether the codebook has been set from data (see `initializeFromData`); training state, set
    /// back when a run resumes.
    public var initializedFromData = false

    init(_ c: VQGANConfig, rng: inout Philox) {
        embedding = Embedding(c.codebookSize, c.codebookDim, rng: &rng)
        let bound = T(1) / T(c.codebookSize)
        embedding.weight.assign(Tensor<T>.uniform([c.codebookSize, c.codebookDim], -bound, bound, rng: &rng).storage)
        commitment = T(c.commitment)
        super.init()
        register("embedding", embedding)
    }

    /// Sets every code to an encoder output drawn at random from `z` (B, D, h, w). A codebook that
    /// starts near zero lets encoder outputs drift away from it faster than the codes follow, so the
    /// VQ loss climbs; starting the codes on the data avoids that (k-means-style initialisation).
    public func initializeFromData(_ z: Tensor<T>, rng: inout Philox) {
        let (b, d, h, w) = (z.shape[0], z.shape[1], z.shape[2], z.shape[3])
        let rows = z.detached().permuted([0, 2, 3, 1]).reshaped([b * h * w, d]).storage
        let k = embedding.weight.shape[0]
        var codes = [T](repeating: 0, count: k * d)
        for j in 0..<k {
            let r = rng.int(below: b * h * w)
            for i in 0..<d { codes[j * d + i] = rows[r * d + i] }
        }
        embedding.weight.assign(codes)
        initializedFromData = true
    }

    /// Moves each code of `codes` (dead: unused for a while) onto an encoder output drawn at random
    /// from `z` (B, D, h, w), so a collapsed codebook comes back into use (dead-code restarts).
    public func restart(_ codes: [Int], from z: Tensor<T>, rng: inout Philox) {
        guard !codes.isEmpty else { return }
        let (b, d, h, w) = (z.shape[0], z.shape[1], z.shape[2], z.shape[3])
        let rows = z.detached().permuted([0, 2, 3, 1]).reshaped([b * h * w, d]).storage
        var table = embedding.weight.storage
        for j in codes {
            let r = rng.int(below: b * h * w)
            for i in 0..<d { table[j * d + i] = rows[r * d + i] }
        }
        embedding.weight.assign(table)
    }

    /// exp(entropy) of the code frequencies: the number of equally used codes it amounts to.
    public static func perplexity(_ counts: [Int]) -> Double {
        let total = Double(counts.reduce(0, +))
        guard total > 0 else { return 0 }
        let entropy = counts.reduce(0.0) { h, c in c == 0 ? h : h - Double(c) / total * log(Double(c) / total) }
        return exp(entropy)
    }

    /// z_e (B, D, h, w) -> z_q with a straight-through gradient, the code indices, and the VQ loss
    /// ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2.
    public func callAsFunction(_ z: Tensor<T>) -> (quantized: Tensor<T>, indices: [Int], loss: Tensor<T>) {
        let (b, d, h, w) = (z.shape[0], z.shape[1], z.shape[2], z.shape[3])
        let rows = z.permuted([0, 2, 3, 1]).reshaped([b * h * w, d])
        let (q, indices) = rows.nearestCodebook(embedding.weight)
        let codes = embedding.weight.gather(rows: indices)
        let loss = codes.mseLoss(rows.detached()) + rows.mseLoss(codes.detached()) * commitment
        return (q.reshaped([b, h, w, d]).permuted([0, 3, 1, 2]), indices, loss)
    }
}

/// A VQ-GAN's conv encoder, quantiser and conv decoder. As `architecture: vq_autoencoder` it is an I2I
/// generator completing the hidden region of T(x) itself; inside MAGE it is the frozen tokenizer.
public final class VQGAN<T: TensorScalar>: Module<T> {
    public let config: VQGANConfig
    public let encoder: VQEncoder<T>
    public let quantize: VectorQuantizer<T>
    public let decoder: VQDecoder<T>

    public init(_ c: VQGANConfig, rng: inout Philox) {
        config = c
        encoder = VQEncoder(c, rng: &rng)
        quantize = VectorQuantizer(c, rng: &rng)
        decoder = VQDecoder(c, rng: &rng)
        super.init()
        register("encoder", encoder)
        register("quantize", quantize)
        register("decoder", decoder)
    }

    public var encoderParameters: [(path: String, tensor: Tensor<T>)] { encoder.namedParameters(prefix: "encoder.") }

    /// Reconstruction of the full image from the masked input, plus the VQ loss.
    public func reconstructionLoss(masked: Tensor<T>, target: Tensor<T>) -> Tensor<T> {
        let (q, _, vq) = quantize(encoder(masked))
        return decoder(q).mseLoss(target) + vq
    }
}
