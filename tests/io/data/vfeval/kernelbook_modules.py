"""The PyTorch modules both fixture environments ask for (imports nothing)."""

MODULES = {
    "Relu": "class Relu(nn.Module):\n    def forward(self, x):\n        return torch.relu(x)\n",
    "AddOne": "class AddOne(nn.Module):\n    def forward(self, x):\n        return x + 1\n",
    "RowSum": "class RowSum(nn.Module):\n    def forward(self, x):\n        return x.sum(-1)\n",
}
