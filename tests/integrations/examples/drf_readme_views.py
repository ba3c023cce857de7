# views.py
from rest_framework.response import Response
from rest_framework.views import APIView


class Items(APIView):
    required_scopes = ("items:read",)  # needed by every method (HEAD, OPTIONS included)

    def get(self, request):
        return Response({"client": request.auth.client_id, "binding": request.auth.binding})
