"""The vocabulary of PyTorch ops and nn layers, sorted by the kind of work they do.

`kbpipe.rater.offline.codefeatures` looks names up here. A name is the call's last
attribute (`torch.relu`, `F.relu` and `x.relu` are all `relu`); in-place
variants lose their trailing underscore before the lookup.
"""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


VIEW = _words(
    "view reshape permute transpose contiguous flatten unflatten squeeze unsqueeze expand "
    "expand_as repeat repeat_interleave chunk split narrow clone cat concat stack t size to "
    "float double half type_as detach view_as flip roll pad unfold index_select gather "
    "select masked_select dim numel zeros ones zeros_like ones_like empty empty_like full "
    "full_like arange linspace tensor rand randn rand_like randn_like randint new_zeros "
    "new_ones new_empty new_full identity dropout dropout2d alpha_dropout cpu cuda "
    "movedim swapaxes tile broadcast_to pixel_shuffle pixel_unshuffle interpolate embedding "
    "upsample triu tril diag one_hot scatter contiguous_format long int bool"
)
ELEMENTWISE = _words(
    "relu relu6 sigmoid tanh gelu silu mish elu selu celu leaky_relu hardtanh hardswish "
    "hardsigmoid softplus softsign tanhshrink softshrink hardshrink exp exp2 log log2 log10 "
    "log1p expm1 sqrt rsqrt abs neg clamp clamp_min clamp_max clip pow sin cos tan erf erfc "
    "sign floor ceil round trunc frac where maximum minimum fmax fmin add sub mul div "
    "true_divide floor_divide remainder fmod masked_fill reciprocal square threshold "
    "logsigmoid glu lerp addcmul addcdiv prelu rrelu sigmoid_ eq ne lt le gt ge logical_and "
    "logical_or logical_not isnan nan_to_num atan atan2 asin acos sinh cosh"
)
REDUCTION = _words(
    "sum mean max min amax amin argmax argmin prod std var norm logsumexp softmax "
    "log_softmax softmin cumsum cumprod cummax layer_norm batch_norm group_norm "
    "instance_norm local_response_norm normalize cosine_similarity pairwise_distance "
    "mse_loss l1_loss smooth_l1_loss huber_loss cross_entropy nll_loss binary_cross_entropy "
    "binary_cross_entropy_with_logits kl_div margin_ranking_loss hinge_embedding_loss "
    "max_pool1d max_pool2d max_pool3d avg_pool1d avg_pool2d avg_pool3d adaptive_avg_pool1d "
    "adaptive_avg_pool2d adaptive_avg_pool3d adaptive_max_pool1d adaptive_max_pool2d "
    "lp_pool2d topk sort all any dist median mode var_mean std_mean count_nonzero "
    "rms_norm"
)
MATMUL = _words(
    "matmul mm bmm linear conv1d conv2d conv3d conv_transpose1d conv_transpose2d "
    "conv_transpose3d einsum addmm baddbmm addbmm bilinear tensordot cdist outer mv dot "
    "inner kron"
)
SEQUENCE = _words("scaled_dot_product_attention multi_head_attention_forward")

# nn layers by the kind of work they do (nn.Identity/Dropout/Flatten count as views).
_LAYERS = {
    "matmul": "Linear LazyLinear Bilinear Conv1d Conv2d Conv3d ConvTranspose1d ConvTranspose2d "
    "ConvTranspose3d",
    "reduction": "LayerNorm BatchNorm1d BatchNorm2d BatchNorm3d GroupNorm InstanceNorm1d "
    "InstanceNorm2d InstanceNorm3d LocalResponseNorm RMSNorm Softmax LogSoftmax Softmin "
    "Softmax2d MaxPool1d MaxPool2d MaxPool3d AvgPool1d AvgPool2d AvgPool3d AdaptiveAvgPool1d "
    "AdaptiveAvgPool2d AdaptiveAvgPool3d AdaptiveMaxPool1d AdaptiveMaxPool2d MSELoss L1Loss "
    "SmoothL1Loss CrossEntropyLoss NLLLoss BCELoss BCEWithLogitsLoss KLDivLoss "
    "CosineSimilarity PairwiseDistance",
    "elementwise": "ReLU ReLU6 GELU Sigmoid Tanh SiLU Mish ELU SELU CELU LeakyReLU PReLU "
    "Hardtanh Hardswish Hardsigmoid Softplus Softsign Tanhshrink Threshold GLU LogSigmoid",
    "sequence": "LSTM GRU RNN LSTMCell GRUCell RNNCell MultiheadAttention Transformer "
    "TransformerEncoder TransformerDecoder TransformerEncoderLayer TransformerDecoderLayer",
    "view": "Identity Dropout Dropout2d Dropout3d AlphaDropout Flatten Unflatten Upsample "
    "PixelShuffle Embedding ZeroPad2d ReflectionPad2d ReplicationPad2d ConstantPad2d",
}
LAYER_KIND = {layer: kind for kind, names in _LAYERS.items() for layer in names.split()}
CONTAINERS = frozenset({"Sequential", "ModuleList", "ModuleDict"})
# Layers that hold learnable weights by default.
WEIGHTED = frozenset(k for k, v in LAYER_KIND.items() if v in ("matmul", "sequence")) | _words(
    "LayerNorm BatchNorm1d BatchNorm2d BatchNorm3d GroupNorm RMSNorm Embedding PReLU"
)
