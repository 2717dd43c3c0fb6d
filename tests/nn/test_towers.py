import torch

from skmm.nn._towers import SequenceTower


def test_sequence_tower_ignores_padding_before_or_after():
    torch.manual_seed(0)
    tower = SequenceTower(vocab_size=10, embedding_dim=4, out_features=3).eval()
    post = torch.tensor([[5, 6, 7, 0, 0], [0, 0, 0, 0, 0], [2, 3, 0, 0, 0]])
    pre = torch.tensor([[0, 0, 5, 6, 7], [0, 0, 0, 0, 0], [0, 0, 0, 2, 3]])
    with torch.no_grad():
        torch.testing.assert_close(tower(pre), tower(post))
        assert torch.all(tower(post)[1] == 0)
        assert not torch.allclose(tower(post)[0], tower(post)[2])
