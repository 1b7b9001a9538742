import Foundation
import LetheTensor

/// Hyper-parameters of the conditional DDPM (spec: `model.diffusion`).
public struct DiffusionConfig: Sendable, Equatable {
    public var imageSize = 32, channels = 1
    public var levels = [32, 64]
    public var timeEmbedding = 128
    public var timesteps = 100
    public var betaStart = 1e-4, betaEnd = 0.02
    public var schedule = DiffusionProcess.Schedule.scaledLinear
    public var groups = 8
    public init() {}
}

/// guided-diffusion's `ResBlock`: GN, SiLU, conv; + the projected time embedding; GN, SiLU, conv;
/// plus a 1x1 skip when the width changes.
public final class ResBlock<T: TensorScalar>: Module<T> {
    public let norm1: GroupNorm<T>, conv1: Conv2d<T>, tembProj: Linear<T>, norm2: GroupNorm<T>, conv2: Conv2d<T>
    public let skip: Conv2d<T>?

    public init(_ inC: Int, _ outC: Int, temb: Int, groups: Int, rng: inout Philox) {
        norm1 = GroupNorm(groups: groups, channels: inC)
        conv1 = Conv2d(inC, outC, kernel: 3, padding: 1, rng: &rng)
        tembProj = Linear(temb, outC, rng: &rng)
        norm2 = GroupNorm(groups: groups, channels: outC)
        conv2 = Conv2d(outC, outC, kernel: 3, padding: 1, rng: &rng)
        skip = inC == outC ? nil : Conv2d(inC, outC, kernel: 1, rng: &rng)
        super.init()
        register("norm1", norm1)
        register("conv1", conv1)
        register("temb_proj", tembProj)
        register("norm2", norm2)
        register("conv2", conv2)
        if let s = skip { register("skip", s) }
    }

    public func callAsFunction(_ x: Tensor<T>, _ emb: Tensor<T>) -> Tensor<T> {
        var h = conv1(norm1(x).silu())
        h = h + tembProj(emb.silu()).reshaped([x.shape[0], h.shape[1], 1, 1])
        h = conv2(norm2(h).silu())
        return h + (skip.map { $0(x) } ?? x)
    }
}

/// A resolution level of the down path: a ResBlock, then (except at the bottom) a stride-2 conv.
public final class DownLevel<T: TensorScalar>: Module<T> {
    public let res: ResBlock<T>
    public let downsample: Conv2d<T>?
    init(_ inC: Int, _ outC: Int, last: Bool, c: DiffusionConfig, rng: inout Philox) {
        res = ResBlock(inC, outC, temb: c.timeEmbedding, groups: c.groups, rng: &rng)
        downsample = last ? nil : Conv2d(outC, outC, kernel: 3, stride: 2, padding: 1, rng: &rng)
        super.init()
        register("res", res)
        if let d = downsample { register("downsample", d) }
    }
}

/// A resolution level of the up path: a ResBlock over [h, skip], then (except at the top) an
/// upsampling conv.
public final class UpLevel<T: TensorScalar>: Module<T> {
    public let res: ResBlock<T>
    public let upsample: Conv2d<T>?
    init(_ inC: Int, _ outC: Int, first: Bool, c: DiffusionConfig, rng: inout Philox) {
        res = ResBlock(inC, outC, temb: c.timeEmbedding, groups: c.groups, rng: &rng)
        upsample = first ? nil : Conv2d(outC, outC, kernel: 3, padding: 1, rng: &rng)
        super.init()
        register("res", res)
        if let u = upsample { register("upsample", u) }
    }
}

/// The time embedding MLP, `time_embed.0` and `time_embed.2` as in guided-diffusion's Sequential.
public final class TimeEmbed<T: TensorScalar>: Module<T> {
    public let linear1: Linear<T>, linear2: Linear<T>
    init(_ inDim: Int, _ dim: Int, rng: inout Philox) {
        linear1 = Linear(inDim, dim, rng: &rng)
        linear2 = Linear(dim, dim, rng: &rng)
        super.init()
        register("0", linear1)
        register("2", linear2)
    }
    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> { linear2(linear1(x).silu()) }
}

/// Palette-style conditional UNet for inpainting: it sees x_t concatenated with the masked image and
/// predicts the noise. E is the down path and the middle block (its feature maps are the embedding);
/// D is the up path.
public final class UNet<T: TensorScalar>: Module<T> {
    public let config: DiffusionConfig
    public let timeEmbed: TimeEmbed<T>
    public let convIn: Conv2d<T>
    public let down: ModuleList<T, DownLevel<T>>
    public let mid: ResBlock<T>
    public let up: ModuleList<T, UpLevel<T>>
    public let normOut: GroupNorm<T>
    public let convOut: Conv2d<T>

    public init(_ c: DiffusionConfig, rng: inout Philox) {
        config = c
        let w = c.levels
        timeEmbed = TimeEmbed(w[0], c.timeEmbedding, rng: &rng)
        convIn = Conv2d(2 * c.channels, w[0], kernel: 3, padding: 1, rng: &rng)
        var downs: [DownLevel<T>] = []
        var inC = w[0]
        for (i, width) in w.enumerated() {
            downs.append(DownLevel(inC, width, last: i == w.count - 1, c: c, rng: &rng))
            inC = width
        }
        down = ModuleList(downs)
        mid = ResBlock(inC, inC, temb: c.timeEmbedding, groups: c.groups, rng: &rng)
        var ups: [UpLevel<T>] = []
        for i in stride(from: w.count - 1, through: 0, by: -1) {
            ups.append(UpLevel(inC + w[i], w[i], first: i == 0, c: c, rng: &rng))
            inC = w[i]
        }
        up = ModuleList(ups)
        normOut = GroupNorm(groups: c.groups, channels: w[0])
        convOut = Conv2d(w[0], c.channels, kernel: 3, padding: 1, rng: &rng)
        super.init()
        register("time_embed", timeEmbed)
        register("conv_in", convIn)
        register("down", down)
        register("mid", mid)
        register("up", up)
        register("norm_out", normOut)
        register("conv_out", convOut)
    }

    public var encoderParameters: [(path: String, tensor: Tensor<T>)] {
        timeEmbed.namedParameters(prefix: "time_embed.") + convIn.namedParameters(prefix: "conv_in.")
            + down.namedParameters(prefix: "down.") + mid.namedParameters(prefix: "mid.")
    }

    /// guided-diffusion's sinusoidal timestep embedding: [cos(t f_k), sin(t f_k)], f_k = 10000^(-k/half).
    public func timestepEmbedding(_ t: [Int]) -> Tensor<T> {
        let dim = config.levels[0]
        let half = dim / 2
        var out = [T](repeating: 0, count: t.count * dim)
        for (b, step) in t.enumerated() {
            for k in 0..<half {
                let arg = Double(step) * Foundation.exp(-Foundation.log(10_000.0) * Double(k) / Double(half))
                out[b * dim + k] = T(Foundation.cos(arg))
                out[b * dim + half + k] = T(Foundation.sin(arg))
            }
        }
        return timeEmbed(Tensor(out, shape: [t.count, dim]))
    }

    /// E: the feature maps of the down path and the middle block (the skips and the bottleneck).
    public func encode(_ xt: Tensor<T>, condition: Tensor<T>, emb: Tensor<T>) -> [Tensor<T>] {
        var h = convIn(Tensor.concat([xt, condition], axis: 1))
        var features: [Tensor<T>] = []
        for level in down.items {
            h = level.res(h, emb)
            features.append(h)
            if let d = level.downsample { h = d(h) }
        }
        features.append(mid(h, emb))
        return features
    }

    /// D: the predicted noise from the encoder's feature maps.
    public func decode(_ features: [Tensor<T>], emb: Tensor<T>) -> Tensor<T> {
        var h = features.last!
        for (j, level) in up.items.enumerated() {
            let skip = features[features.count - 2 - j]
            h = level.res(Tensor.concat([h, skip], axis: 1), emb)
            if let u = level.upsample { h = u(h.upsampleNearest2x()) }
        }
        return convOut(normOut(h).silu())
    }

    public func callAsFunction(_ xt: Tensor<T>, condition: Tensor<T>, t: [Int]) -> Tensor<T> {
        let emb = timestepEmbedding(t)
        return decode(encode(xt, condition: condition, emb: emb), emb: emb)
    }
}
