import LetheTensor

/// Hyper-parameters of the masked autoencoder (spec: `model.mae`).
public struct MAEConfig: Sendable, Equatable {
    public var imageSize = 32, channels = 1, patchSize = 4
    public var width = 128, depth = 4, heads = 4, mlpRatio = 4.0
    public var decoderWidth = 64, decoderDepth = 2, decoderHeads = 4
    public init() {}
    public var grid: Int { imageSize / patchSize }
    public var patches: Int { grid * grid }
    public var patchDim: Int { patchSize * patchSize * channels }
}

/// timm's `PatchEmbed`: a stride-p convolution, so the state dict reads `patch_embed.proj.weight`.
public final class PatchEmbed<T: TensorScalar>: Module<T> {
    public let proj: Conv2d<T>
    public init(channels: Int, width: Int, patch: Int, rng: inout Philox) {
        proj = Conv2d(channels, width, kernel: patch, stride: patch, rng: &rng)
        super.init()
        register("proj", proj)
    }
    /// (B, C, H, W) -> (B, L, width)
    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> {
        let y = proj(x)
        return y.reshaped([y.shape[0], y.shape[1], y.shape[2] * y.shape[3]]).transposed(1, 2)
    }
}

/// Masked autoencoder (He et al.) as an I2I generator: the ViT encoder E sees the visible patches of
/// T(x); the light decoder D puts mask tokens where patches are hidden and predicts every patch.
/// Parameter paths follow the reference MAE code (no cls token: completion does not use it).
public final class MAE<T: TensorScalar>: Module<T> {
    public let config: MAEConfig
    public let posEmbed: Tensor<T>
    public let maskToken: Tensor<T>
    public let decoderPosEmbed: Tensor<T>
    public let patchEmbed: PatchEmbed<T>
    public let blocks: ModuleList<T, TransformerBlock<T>>
    public let norm: LayerNorm<T>
    public let decoderEmbed: Linear<T>
    public let decoderBlocks: ModuleList<T, TransformerBlock<T>>
    public let decoderNorm: LayerNorm<T>
    public let decoderPred: Linear<T>

    public init(_ c: MAEConfig, rng: inout Philox) {
        config = c
        posEmbed = sinCosPositionEmbedding(dim: c.width, grid: c.grid).reshaped([1, c.patches, c.width])
        decoderPosEmbed = sinCosPositionEmbedding(dim: c.decoderWidth, grid: c.grid).reshaped([
            1, c.patches, c.decoderWidth,
        ])
        maskToken = Tensor.randn([1, 1, c.decoderWidth], std: 0.02, rng: &rng, requiresGrad: true)
        patchEmbed = PatchEmbed(channels: c.channels, width: c.width, patch: c.patchSize, rng: &rng)
        blocks = ModuleList(
            (0..<c.depth).map { _ in TransformerBlock(dim: c.width, heads: c.heads, mlpRatio: c.mlpRatio, rng: &rng) })
        norm = LayerNorm(c.width, eps: 1e-6)
        decoderEmbed = Linear(c.width, c.decoderWidth, rng: &rng)
        decoderBlocks = ModuleList(
            (0..<c.decoderDepth).map { _ in
                TransformerBlock(dim: c.decoderWidth, heads: c.decoderHeads, mlpRatio: c.mlpRatio, rng: &rng)
            })
        decoderNorm = LayerNorm(c.decoderWidth, eps: 1e-6)
        decoderPred = Linear(c.decoderWidth, c.patchDim, rng: &rng)
        super.init()
        // The fixed sin-cos position embeddings are buffers (saved, never trained), as in the reference
        // MAE, where they are parameters with requires_grad=False.
        registerBuffer("pos_embed", posEmbed)
        register("mask_token", maskToken)
        registerBuffer("decoder_pos_embed", decoderPosEmbed)
        register("patch_embed", patchEmbed)
        register("blocks", blocks)
        register("norm", norm)
        register("decoder_embed", decoderEmbed)
        register("decoder_blocks", decoderBlocks)
        register("decoder_norm", decoderNorm)
        register("decoder_pred", decoderPred)
    }

    /// The encoder E: every parameter the unlearning objective trains.
    public var encoderParameters: [(path: String, tensor: Tensor<T>)] {
        patchEmbed.namedParameters(prefix: "patch_embed.") + blocks.namedParameters(prefix: "blocks.")
            + norm.namedParameters(prefix: "norm.")
    }

    /// E(T(x)): (B, C, H, W) images and the visible patch indices of each -> (B, V, width). The
    /// patches listed are embedded as they are: pixels of a listed patch that the I2I mask hides must
    /// be filled by the caller first (`MaskTransform.apply`), or the hole leaks into the encoder.
    public func encode(_ images: Tensor<T>, visible: [[Int]]) -> Tensor<T> {
        precondition(
            visible.count == images.shape[0] && Set(visible.map(\.count)).count == 1,
            "one equally long visible list per image")
        var h = TokenOrder.gather(patchEmbed(images) + posEmbed, visible)
        for block in blocks.items { h = block(h) }
        return norm(h)
    }

    /// D: latent (B, V, width) of the visible patches -> every patch predicted, (B, L, p*p*C).
    public func decode(_ latent: Tensor<T>, visible: [[Int]]) -> Tensor<T> {
        var h = TokenOrder.restore(decoderEmbed(latent), maskToken: maskToken, visible: visible, count: config.patches)
        h = h + decoderPosEmbed
        for block in decoderBlocks.items { h = block(h) }
        return decoderPred(decoderNorm(h))
    }

    /// (B, C, H, W) -> (B, L, p*p*C), MAE's patch order and pixel layout.
    public func patchify(_ x: Tensor<T>) -> Tensor<T> {
        let (b, c, p, g) = (x.shape[0], config.channels, config.patchSize, config.grid)
        return x.reshaped([b, c, g, p, g, p]).permuted([0, 2, 4, 3, 5, 1]).reshaped([b, g * g, p * p * c])
    }

    /// The inverse of `patchify`.
    public func unpatchify(_ patches: Tensor<T>) -> Tensor<T> {
        let (b, c, p, g) = (patches.shape[0], config.channels, config.patchSize, config.grid)
        return patches.reshaped([b, g, g, p, p, c]).permuted([0, 5, 1, 3, 2, 4]).reshaped([b, c, g * p, g * p])
    }

    /// Mean squared error over the hidden patches only, as MAE trains: `input` is encoded (the masked
    /// image, hidden pixels filled), `target` (default: the input) is what the hidden patches should be.
    public func reconstructionLoss(_ input: Tensor<T>, target: Tensor<T>? = nil, visible: [[Int]]) -> Tensor<T> {
        let prediction = decode(encode(input, visible: visible), visible: visible)
        let hidden = visible.map { vis in (0..<config.patches).filter { !Set(vis).contains($0) } }
        return TokenOrder.gather(prediction, hidden).mseLoss(TokenOrder.gather(patchify(target ?? input), hidden))
    }
}
