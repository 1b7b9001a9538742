import LetheTensor

/// Hyper-parameters of MAGE (spec: `model.mage`): a VQ-GAN tokenizer and a ViT over its tokens.
public struct MAGEConfig: Sendable, Equatable {
    public var imageSize = 32, channels = 1
    public var tokenizer = VQGANConfig()
    public var width = 128, depth = 4, heads = 4, mlpRatio = 4.0
    public var decoderWidth = 128, decoderDepth = 2, decoderHeads = 4
    public init() {}
    /// Side of the token grid (the tokenizer's latent grid).
    public var grid: Int { tokenizer.latentSize }
    public var tokens: Int { grid * grid }
    public var codebookSize: Int { tokenizer.codebookSize }
    /// The [MASK] token's row of the word embeddings, after the codebook's.
    public var maskTokenID: Int { codebookSize }
}

/// BERT's embeddings as MAGE's `token_emb` has them: word embeddings (the codebook's indices and
/// [MASK]), learned position embeddings, LayerNorm. Part of the encoder E.
public final class TokenEmbedding<T: TensorScalar>: Module<T> {
    public let wordEmbeddings: Embedding<T>
    public let positionEmbeddings: Embedding<T>
    public let layerNorm: LayerNorm<T>

    public init(vocabulary: Int, positions: Int, width: Int, rng: inout Philox) {
        wordEmbeddings = Embedding(vocabulary, width, rng: &rng)
        positionEmbeddings = Embedding(positions, width, rng: &rng)
        // BERT initialises embeddings N(0, 0.02).
        for table in [wordEmbeddings, positionEmbeddings] {
            table.weight.assign(Tensor<T>.randn(table.weight.shape, std: 0.02, rng: &rng).storage)
        }
        layerNorm = LayerNorm(width, eps: 1e-6)
        super.init()
        register("word_embeddings", wordEmbeddings)
        register("position_embeddings", positionEmbeddings)
        register("LayerNorm", layerNorm)
    }

    /// Token ids and their grid positions, one equally long list per image -> (B, V, width).
    public func callAsFunction(_ ids: [[Int]], positions: [[Int]]) -> Tensor<T> {
        let shape = [ids.count, ids.first?.count ?? 0]
        return layerNorm(
            wordEmbeddings(ids.flatMap { $0 }, shape: shape)
                + positionEmbeddings(positions.flatMap { $0 }, shape: shape))
    }
}

/// MAGE (Li et al., 2023) as an I2I generator: a frozen VQ-GAN tokenizer turns the image into a grid
/// of codebook indices; the encoder E (token embedding, blocks, norm) sees the visible tokens only
/// (MAE-style: masked tokens are dropped); the decoder D puts a mask token at every other position
/// and predicts the codebook index of every token; the tokenizer's decoder renders the tokens.
/// Parameter paths follow MAGE's code (`token_emb`, `blocks.N.attn.qkv`, `decoder_blocks.N`, ...).
/// Simplifications, documented in docs/METHOD.md: no class token, and the prediction head is a
/// linear layer of D's own (MAGE ties it to the word embeddings, which would let unlearning E change
/// D's output layer).
public final class MAGE<T: TensorScalar>: Module<T> {
    public let config: MAGEConfig
    public let tokenizer: VQGAN<T>
    public let tokenEmb: TokenEmbedding<T>
    public let blocks: ModuleList<T, TransformerBlock<T>>
    public let norm: LayerNorm<T>
    public let decoderEmbed: Linear<T>
    public let maskToken: Tensor<T>
    public let decoderPosEmbed: Tensor<T>
    public let decoderBlocks: ModuleList<T, TransformerBlock<T>>
    public let decoderNorm: LayerNorm<T>
    public let decoderPred: Linear<T>

    public init(_ c: MAGEConfig, rng: inout Philox) {
        precondition(c.tokenizer.imageSize == c.imageSize, "the tokenizer's image size is the model's")
        config = c
        tokenizer = VQGAN(c.tokenizer, rng: &rng)
        tokenEmb = TokenEmbedding(vocabulary: c.codebookSize + 1, positions: c.tokens, width: c.width, rng: &rng)
        blocks = ModuleList(
            (0..<c.depth).map { _ in TransformerBlock(dim: c.width, heads: c.heads, mlpRatio: c.mlpRatio, rng: &rng) })
        norm = LayerNorm(c.width, eps: 1e-6)
        decoderEmbed = Linear(c.width, c.decoderWidth, rng: &rng)
        maskToken = Tensor.randn([1, 1, c.decoderWidth], std: 0.02, rng: &rng, requiresGrad: true)
        decoderPosEmbed = Tensor.randn([1, c.tokens, c.decoderWidth], std: 0.02, rng: &rng, requiresGrad: true)
        decoderBlocks = ModuleList(
            (0..<c.decoderDepth).map { _ in
                TransformerBlock(dim: c.decoderWidth, heads: c.decoderHeads, mlpRatio: c.mlpRatio, rng: &rng)
            })
        decoderNorm = LayerNorm(c.decoderWidth, eps: 1e-6)
        decoderPred = Linear(c.decoderWidth, c.codebookSize, rng: &rng)
        super.init()
        register("tokenizer", tokenizer)
        register("token_emb", tokenEmb)
        register("blocks", blocks)
        register("norm", norm)
        register("decoder_embed", decoderEmbed)
        register("mask_token", maskToken)
        register("decoder_pos_embed_learned", decoderPosEmbed)
        register("decoder_blocks", decoderBlocks)
        register("decoder_norm", decoderNorm)
        register("decoder_pred", decoderPred)
    }

    /// The encoder E: every parameter the unlearning objective trains.
    public var encoderParameters: [(path: String, tensor: Tensor<T>)] {
        tokenEmb.namedParameters(prefix: "token_emb.") + blocks.namedParameters(prefix: "blocks.")
            + norm.namedParameters(prefix: "norm.")
    }

    /// The transformer (E and D): what the transformer stage trains, the tokenizer frozen.
    public var transformerParameters: [(path: String, tensor: Tensor<T>)] {
        namedParameters().filter { !$0.path.hasPrefix("tokenizer.") }
    }

    /// The tokenizer's codebook index of every token, per image (row-major grid), without gradient.
    public func tokenize(_ images: Tensor<T>) -> [[Int]] {
        GradMode.withoutGrad {
            let indices = tokenizer.quantize(tokenizer.encoder(images)).indices
            let l = config.tokens
            return (0..<images.shape[0]).map { Array(indices[($0 * l)..<(($0 + 1) * l)]) }
        }
    }

    /// E: the tokens of each image and its visible positions (one equally long list per image) ->
    /// (B, V, width). Only the visible tokens are embedded.
    public func encode(tokens: [[Int]], visible: [[Int]]) -> Tensor<T> {
        precondition(
            visible.count == tokens.count && Set(visible.map(\.count)).count == 1,
            "one equally long visible list per image")
        let ids = zip(tokens, visible).map { t, v in v.map { t[$0] } }
        var h = tokenEmb(ids, positions: visible)
        for block in blocks.items { h = block(h) }
        return norm(h)
    }

    /// D: the latent of the visible tokens (B, V, width) -> logits over the codebook for every
    /// position, (B, L, codebook_size).
    public func decode(_ latent: Tensor<T>, visible: [[Int]]) -> Tensor<T> {
        var h = TokenOrder.restore(decoderEmbed(latent), maskToken: maskToken, visible: visible, count: config.tokens)
        h = h + decoderPosEmbed
        for block in decoderBlocks.items { h = block(h) }
        return decoderPred(decoderNorm(h))
    }

    /// The tokenizer's decoder: a grid of codebook indices per image -> images (B, C, H, W).
    public func render(_ tokens: [[Int]]) -> Tensor<T> {
        let (g, d) = (config.grid, config.tokenizer.codebookDim)
        let codes = tokenizer.quantize.embedding.weight.gather(rows: tokens.flatMap { $0 })
        return tokenizer.decoder(codes.reshaped([tokens.count, g, g, d]).permuted([0, 3, 1, 2]))
    }
}
